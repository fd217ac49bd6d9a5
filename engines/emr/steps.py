"""The EMR steps of each action type, and the scripts they run (uploaded under the datastore's
s3_artifacts_path): Hive through ``hive-script``, Impala through ``impala-shell``, PySpark through
``spark-submit --deploy-mode cluster``, HDFS to S3 through ``s3-dist-cp``; every step ``CONTINUE``s on failure,
so one failed action never takes the cluster down."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from engines.sdk import ActionFailure

COMMAND_RUNNER = "command-runner.jar"
HIVE_ARGS = ("hive-script", "--run-hive-script", "--args", "-f")


@dataclass(frozen=True)
class Step:
    """One EMR step. ``considered_successful``: the action's important work is done before this step runs, so a
    consume_subscription whose later step fails still marks its elements CONSUMED (the original's rule)."""

    title: str
    args: tuple[str, ...]
    jar: str = COMMAND_RUNNER
    considered_successful: bool = False

    def name(self, action_id: str, number: int, total: int) -> str:
        """The original's step name, which tells an operator in the EMR console whose step it is."""
        return f"dart: (action_id={action_id},step_num={number},steps_total={total}) {self.title}"

    def request(self, action_id: str, number: int, total: int) -> dict[str, Any]:
        return {"Name": self.name(action_id, number, total), "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": self.jar, "Args": list(self.args)}}


@dataclass
class Plan:
    """An action's steps, in order, and the files they need in S3 (path -> contents)."""

    action_id: str
    steps: list[Step]
    artifacts: dict[str, bytes] = field(default_factory=dict)

    def requests(self) -> list[dict[str, Any]]:
        total = len(self.steps)
        return [s.request(self.action_id, i, total) for i, s in enumerate(self.steps, 1)]

    def as_extra_data(self) -> dict[str, Any]:
        """What dry_run writes to the action: each step as it would be submitted, and the files it would upload."""
        total = len(self.steps)
        return {"steps": [{"step": s.request(self.action_id, i, total), "step_num": i, "steps_total": total,
                           "action_considered_successful": s.considered_successful}
                          for i, s in enumerate(self.steps, 1)],
                "artifacts": sorted(self.artifacts)}


def artifacts_root(datastore: dict[str, Any]) -> str:
    root = datastore["data"].get("s3_artifacts_path")
    if not root:
        raise ActionFailure(f"datastore {datastore['id']} has no s3_artifacts_path for the scripts of its steps")
    return str(root).rstrip("/")


def steps_root(datastore: dict[str, Any]) -> str:
    return artifacts_root(datastore) + "/steps"


def hive_script(root: str, action_id: str, contents: str) -> Plan:
    path = f"{root}/hive/run_hive_script_{action_id}.hql"
    return Plan(action_id, [Step(f"run_hive_script_{action_id}.hql", (*HIVE_ARGS, path))],
                {path: contents.encode()})


def impala_script(root: str, action_id: str, contents: str) -> Plan:
    """EMR releases do not ship Impala: the cluster needs it installed (a start_datastore bootstrap_script)."""
    path = f"{root}/impala/run_impala_script_{action_id}.sql"
    local = f"/tmp/run_impala_script_{action_id}.sql"
    command = f"aws s3 cp {shlex.quote(path)} {local} && impala-shell -f {local}"
    return Plan(action_id, [Step(f"run_impala_script_{action_id}.sql", ("bash", "-c", command))],
                {path: contents.encode()})


def pyspark_script(root: str, action_id: str, contents: str) -> Plan:
    path = f"{root}/misc/run_pyspark_script_{action_id}.py"
    return Plan(action_id, [Step(f"run_pyspark_script_{action_id}.py",
                                 ("spark-submit", "--deploy-mode", "cluster", path))],
                {path: contents.encode()})


def copy_hdfs_to_s3(action_id: str, source: str, destination: str) -> Plan:
    """One s3-dist-cp straight to the destination: the original's copy to a staging prefix then ``aws s3 mv``
    worked around S3's eventual consistency, which S3 no longer has."""
    return Plan(action_id, [Step("s3-dist-cp hdfs to s3",
                                 ("s3-dist-cp", "--src", source.rstrip("/") + "/",
                                  "--dest", destination.rstrip("/") + "/"))])
