"""The emr_engine run by a real `dart up` (SQLite) as local engine processes against moto's EMR and S3 (with the
step control of tests/engines/emr_moto.py), the step agent standing in for the cluster's Hadoop: every action
type in one run, with the cluster sized from the pending loads, the steps and scripts verified, one PySpark
script really executed on local Spark and its output read back; then a failed step, the consume_subscription
partial-success rule and a SIGTERM'd engine cancelling its running step."""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bench.harness.api_client import Api
from bench.harness.moto import AWS_ENV
from bench.harness.stacks import RunningDart
from services.adapters.local_engines import engine_pids
from tests.engines import emr_support
from tests.engines.conftest import dataset_for
from tests.engines.e2e_support import dart_up
from tests.engines.emr_agent import HOLD, SPARK, StepAgent, wait_for
from tests.engines.test_end_to_end import _finished, _states

pytestmark = pytest.mark.slow
emr_url = emr_support.emr_url  # the fixture: the EMR moto server
COLUMNS: list[dict[str, Any]] = [{"name": "id", "data_type": "BIGINT"}, {"name": "name", "data_type": "STRING"}]
WORD_COUNT = """\
from pyspark.sql import SparkSession, functions as F

spark = SparkSession.builder.appName("word count").getOrCreate()
lines = spark.read.text("s3://{bucket}/words/")
words = lines.select(F.explode(F.split("value", " ")).alias("word")).where("word != ''")
counts = words.groupBy("word").count().orderBy(F.desc("count"), "word")
counts.coalesce(1).write.mode("overwrite").csv("s3://{bucket}/counts/", header=True)
spark.stop()
"""


@pytest.fixture(scope="module")
def bucket(emr_url: str) -> str:
    name = f"dart-emr-{uuid.uuid4().hex[:10]}"
    _s3(emr_url).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def dart(emr_url: str, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    with dart_up(tmp_path_factory, emr_url, {"emr_engine": "engines.emr"},
                 DART_S3_DATASTORES_ROOT=f"s3://{bucket}/datastores", DART_EMR_POLL_SECONDS="0.1",
                 DART_LOCAL_ENGINE_ENV="DART_EMR_POLL_SECONDS") as running:
        yield running


@pytest.fixture(scope="module")
def api(dart: RunningDart) -> Api:
    return dart.api()  # `dart up` registered the emr_engine with the other built-ins


def _s3(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])


def _emr(url: str) -> Any:
    return boto3.client("emr", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])


def _feed(api: Api, s3: Any, bucket: str, prefix: str, sizes: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dataset of gzip CSV files and an ACTIVE subscription to it."""
    for i, rows in enumerate(sizes):
        body = "id,name\n" + "".join(f"{n},name {n}\n" for n in range(rows))
        s3.put_object(Bucket=bucket, Key=f"{prefix}/part-{i}.csv.gz", Body=gzip.compress(body.encode()))
    dataset = api.post("/dataset", {"data": dataset_for(f"s3://{bucket}/{prefix}", "CSV", "GZIP", COLUMNS,
                                                        table_name=prefix)})
    subscription = api.post(f"/dataset/{dataset['id']}/subscription", {"data": {"name": f"sub_{prefix}"}})
    wait_for(lambda: api.get(f"/subscription/{subscription['id']}")["data"]["state"] == "ACTIVE", 60,
             "the subscription to become ACTIVE")
    return dataset, subscription


def _store(api: Api, **args: Any) -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": f"emr_{time.monotonic_ns()}", "engine_name": "emr_engine",
                                            "state": "ACTIVE", "args": {"release_label": "emr-7.5.0", **args}}})


def _actions(api: Api, store: dict[str, Any], *actions: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return list(api.post(f"/datastore/{store['id']}/action", [
        {"data": {"name": f"a{i}_{kind}", "action_type_name": kind, "engine_name": "emr_engine", "args": args,
                  "on_failure": "CONTINUE"}} for i, (kind, args) in enumerate(actions)]))


def _by_action(step: dict[str, Any]) -> str:
    return str(step["Name"].split("action_id=", 1)[1].split(",", 1)[0])


def test_every_action_type_through_dart_with_one_real_pyspark_run(api: Api, emr_url: str,
                                                                   bucket: str) -> None:
    s3, emr = _s3(emr_url), _emr(emr_url)
    dataset, subscription = _feed(api, s3, bucket, "sales", [50, 80])
    s3.put_object(Bucket=bucket, Key="words/a.txt", Body=b"to be or not to be\nthat is the question\n")
    sales_bytes = sum(o["Size"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="sales/")["Contents"])
    # The pending loads bring the sales files twice (load_dataset's range, the subscription's elements); at
    # 1e-9 of an m5.2xlarge's 128 GB each core holds 128 bytes.
    store = _store(api, data_to_freespace_ratio=1e-9, core_node_limit=49, cluster_tags={"cost": "e2e"})
    expected_cores = math.ceil(2 * sales_bytes / (128 * 1000 ** 3 * 1e-9))
    assert 1 < expected_cores <= 49
    overrides = json.dumps([{"Classification": "spark-defaults", "Properties": {"spark.executor.cores": "4"}}])
    plan = [("start_datastore", {"bootstrap_script": "#!/bin/bash\nsudo yum install -y htop\n",
                                 "configuration_overrides": overrides}),
            ("load_dataset", {"dataset_id": dataset["id"]}),
            ("consume_subscription", {"subscription_id": subscription["id"]}),
            ("run_hive_script", {"script_contents": "SELECT count(*) FROM sales;"}),
            ("run_impala_script", {"script_contents": "COMPUTE STATS sales;"}),
            ("run_pyspark_script", {"script_contents": WORD_COUNT.format(bucket=bucket)}),
            ("copy_hdfs_to_s3", {"source_hdfs_path": "hdfs:///user/hive/warehouse/sales",
                                 "destination_s3_path": f"s3://{bucket}/export/sales"}),
            ("terminate_datastore", {})]
    with StepAgent(emr_url, lambda step: SPARK if "run_pyspark_script" in step["Name"] else "COMPLETED",
                   interval=0.1) as agent:
        created = _actions(api, store, *plan)
        done = [_finished(api, a["id"], timeout=240) for a in created]
    assert _states(done) == ["COMPLETED"] * len(plan), [a["data"].get("error_message") for a in done] + [
        agent.spark_output[-3000:]]

    data = api.get(f"/datastore/{store['id']}")["data"]
    cluster_id = data["extra_data"]["cluster_id"]
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert (cluster["Name"], cluster["ReleaseLabel"], cluster["Status"]["State"]) == (
        f"dart-datastore-{store['id']}-{store['data']['name']}", "emr-7.5.0", "TERMINATED")
    assert data["state"] == "DONE"
    host = cluster["MasterPublicDnsName"]
    assert (data["host"], data["port"], data["connection_url"]) == (host, 10000,
                                                                    f"jdbc:hive2://{host}:10000/default")
    groups = {g["InstanceGroupType"]: g["RequestedInstanceCount"]
              for g in emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]}
    assert groups == {"MASTER": 1, "CORE": expected_cores}
    spark_defaults = next(c for c in cluster["Configurations"] if c["Classification"] == "spark-defaults")
    assert spark_defaults["Properties"]["spark.executor.cores"] == "4"
    [bootstrap] = emr.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
    bucket_, key = bootstrap["ScriptPath"][5:].split("/", 1)
    assert s3.get_object(Bucket=bucket_, Key=key)["Body"].read() == b"#!/bin/bash\nsudo yum install -y htop\n"

    steps = list(reversed(emr.list_steps(ClusterId=cluster_id)["Steps"]))
    ids = [a["id"] for a in created]
    assert [(_by_action(s), s["Config"]["Args"][0], s["Status"]["State"]) for s in steps] == [
        (ids[1], "spark-submit", "COMPLETED"), (ids[1], "spark-sql", "COMPLETED"),
        (ids[2], "spark-submit", "COMPLETED"), (ids[2], "spark-sql", "COMPLETED"),
        (ids[3], "hive-script", "COMPLETED"), (ids[4], "bash", "COMPLETED"),
        (ids[5], "spark-submit", "COMPLETED"), (ids[6], "s3-dist-cp", "COMPLETED")]
    load_spec = json.loads(s3.get_object(Bucket=bucket, Key=steps[0]["Config"]["Args"][4].split("/", 3)[3])
                           ["Body"].read())
    assert load_spec["files"] == [f"s3://{bucket}/sales/part-0.csv.gz", f"s3://{bucket}/sales/part-1.csv.gz"]
    assert done[1]["data"]["extra_data"]["steps"][0]["step_id"] == steps[0]["Id"]
    elements = api.ok("GET", f"/subscription/{subscription['id']}/elements", params={"limit": 10})
    assert sorted(e["state"] for e in elements) == ["CONSUMED", "CONSUMED"]

    counts = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="counts/")["Contents"]
              if o["Key"].endswith(".csv")]
    assert len(counts) == 1, counts
    text = s3.get_object(Bucket=bucket, Key=counts[0])["Body"].read().decode()
    assert text.splitlines()[:3] == ["word,count", "be,2", "to,2"]
    assert sorted(text.splitlines()[3:]) == ["is,1", "not,1", "or,1", "question,1", "that,1", "the,1"]


def test_failure_partial_success_and_a_stopped_engine_through_dart(api: Api, emr_url: str,
                                                                   bucket: str) -> None:
    s3, emr = _s3(emr_url), _emr(emr_url)
    _, subscription = _feed(api, s3, bucket, "clicks", [10, 20])
    store = _store(api, instance_count=2)
    rules: dict[str, Any] = {}
    plan = [("start_datastore", {}),
            ("run_hive_script", {"script_contents": "SELEC 1;"}),
            ("consume_subscription", {"subscription_id": subscription["id"]}),
            ("run_hive_script", {"script_contents": "SELECT sleep(3600);"}),
            ("terminate_datastore", {})]

    def rule(step: dict[str, Any]) -> Any:
        decide = rules.get(_by_action(step), "COMPLETED")
        return decide(step) if callable(decide) else decide

    with StepAgent(emr_url, rule, interval=0.1) as agent:
        created = _actions(api, store, *plan)
        ids = [a["id"] for a in created]
        rules[ids[1]] = {"reason": "Unknown error.", "message": "ParseException line 1:0",
                         "log_file": "s3://logs/steps/stderr.gz"}
        rules[ids[2]] = lambda step: {"reason": "no statistics"} if "analyze" in step["Name"] else "COMPLETED"
        rules[ids[3]] = HOLD
        held = wait_for(lambda: [s for s, what in agent.handled.items() if what == HOLD], 90, "the held step")
        pids = wait_for(lambda: engine_pids(ids[3]), 10, "the engine of the held step")
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        done = [_finished(api, i, timeout=90) for i in ids]
    assert _states(done) == ["COMPLETED", "FAILED", "FAILED", "FAILED", "COMPLETED"], [
        a["data"].get("error_message") for a in done]
    cluster_id = api.get(f"/datastore/{store['id']}")["data"]["extra_data"]["cluster_id"]
    steps = {s["Id"]: s for s in emr.list_steps(ClusterId=cluster_id)["Steps"]}
    failed = next(s for s in steps.values() if _by_action(s) == ids[1])
    assert done[1]["data"]["error_message"] == (
        f"run_hive_script: step 1 of 1 (run_hive_script_{ids[1]}.hql, {failed['Id']}) FAILED: Unknown error.: "
        "ParseException line 1:0 (log: s3://logs/steps/stderr.gz)")
    assert done[2]["data"]["error_message"].startswith(
        "consume_subscription: Although the following error occurred, the important EMR steps completed "
        "successfully and the subscription elements have been marked as CONSUMED: step 2 of 2 (analyze")
    elements = api.ok("GET", f"/subscription/{subscription['id']}/elements", params={"limit": 10})
    assert sorted(e["state"] for e in elements) == ["CONSUMED", "CONSUMED"]
    assert done[3]["data"]["error_message"] == (
        f"run_hive_script: the engine was stopped (SIGTERM): step {held[0]} was cancelled")
    assert steps[held[0]]["Status"]["State"] == "CANCELLED"
