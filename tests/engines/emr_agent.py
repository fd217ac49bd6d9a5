"""A stand-in for the Hadoop side of an EMR cluster in the emr_engine's tests: a thread that watches moto's EMR
(tests/engines/emr_moto.py) for RUNNING steps and ends each as its rule says: COMPLETED, FAILED with
EMR-style failure details, left running (for cancellation), or really run when it is ``spark-submit`` of a
PySpark script. A real run downloads the script and the objects of every bucket it names from moto's S3
into a local mirror, points its ``s3://bucket/`` paths at the mirror (what EMRFS does on a cluster), runs it
with local PySpark (one core, small driver memory), uploads the files it wrote and completes the step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import boto3

from bench.harness.moto import AWS_ENV
from tests.engines.emr_moto import set_step_state

Rule = Callable[[dict[str, Any]], "str | dict[str, str]"]
SPARK = "SPARK"  # a rule's answer: run the spark-submit step for real
HOLD = "HOLD"  # a rule's answer: leave the step RUNNING (a cancellation test)
BUCKET = re.compile(r"s3://([a-z0-9][a-z0-9.\-]+)/")


def complete_all(step: dict[str, Any]) -> str | dict[str, str]:
    return "COMPLETED"


class StepAgent:
    def __init__(self, endpoint: str, rule: Rule = complete_all, interval: float = 0.05) -> None:
        self.endpoint, self.rule, self.interval = endpoint, rule, interval
        kwargs = {"endpoint_url": endpoint, "region_name": "us-east-1",
                  "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
                  "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"]}
        self.emr = boto3.client("emr", **kwargs)
        self.s3 = boto3.client("s3", **kwargs)
        self.handled: dict[str, str] = {}  # step id -> what the agent did
        self.spark_output = ""
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emr-step-agent", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.errors and exc[0] is None:
            raise self.errors[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except BaseException as exc:  # noqa: BLE001 - surfaced by __exit__
                self.errors.append(exc)
                return
            self._stop.wait(self.interval)

    def tick(self) -> None:
        for cluster in self.emr.list_clusters(ClusterStates=["WAITING", "RUNNING"])["Clusters"]:
            for step in self.emr.list_steps(ClusterId=cluster["Id"], StepStates=["RUNNING"])["Steps"]:
                if step["Id"] not in self.handled:
                    self.handle(cluster["Id"], step)

    def handle(self, cluster_id: str, step: dict[str, Any]) -> None:
        decision = self.rule(step)
        if decision == HOLD:
            self.handled[step["Id"]] = HOLD
            return
        if decision == SPARK:
            decision = self.spark(step)
        if isinstance(decision, dict):
            set_step_state(self.endpoint, cluster_id, step["Id"], "FAILED", **decision)
            self.handled[step["Id"]] = "FAILED"
        else:
            set_step_state(self.endpoint, cluster_id, step["Id"], decision)
            self.handled[step["Id"]] = decision

    # -- a real PySpark run -------------------------------------------------------------------------------

    def spark(self, step: dict[str, Any]) -> str | dict[str, str]:
        args = list(step["Config"]["Args"])
        assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"], args
        script_path, script_args = args[3], args[4:]
        bucket, key = script_path[5:].split("/", 1)
        script = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        with tempfile.TemporaryDirectory(prefix="emr-agent-") as tmp:
            mirror = Path(tmp) / "s3"
            buckets = set(BUCKET.findall(script + " " + " ".join(script_args)))
            before = self._mirror(mirror, buckets)
            local_script = Path(tmp) / Path(key).name
            local_script.write_text(self._local(script, mirror))
            done = subprocess.run(
                [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]", "--driver-memory",
                 "512m", "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=1",
                 # C1 only and the serial collector: about half the CPU of Spark's start-up for a short job.
                 "--conf", "spark.driver.extraJavaOptions=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
                 str(local_script), *(self._local(a, mirror) for a in script_args)],
                check=False, capture_output=True, text=True, timeout=300, cwd=tmp,
                env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable})
            self.spark_output = done.stdout + done.stderr
            if done.returncode != 0:
                last = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["no output"]
                return {"reason": "spark-submit failed", "message": last[0],
                        "log_file": f"s3://{bucket}/logs/{step['Id']}/stderr.gz"}
            self._upload_new(mirror, before)
        return "COMPLETED"

    @staticmethod
    def _local(text: str, mirror: Path) -> str:
        return BUCKET.sub(lambda m: f"file://{mirror}/{m.group(1)}/", text)

    def _mirror(self, mirror: Path, buckets: set[str]) -> set[Path]:
        found = set()
        for bucket in buckets:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents") or []:
                    target = mirror / bucket / obj["Key"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self.s3.download_file(bucket, obj["Key"], str(target))
                    found.add(target)
        return found

    def _upload_new(self, mirror: Path, before: set[Path]) -> None:
        for path in mirror.rglob("*"):
            if path.is_file() and path not in before and not path.name.endswith(".crc"):
                bucket, key = path.relative_to(mirror).as_posix().split("/", 1)
                self.s3.upload_file(str(path), bucket, key)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
