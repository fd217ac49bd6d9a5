"""The emr_engine's actions against moto's EMR and S3 over loopback (tests/engines/emr_moto.py adds the
CancelSteps, step states and FailureDetails moto lacks): the exact RunJobFlow the cluster gets (instance
groups sized from the pending loads, release label, bootstrap, configurations), each action type's steps and
uploaded scripts, steps driven to COMPLETED, FAILED and CANCELLED by the step agent, a step cancelled when its
action ends elsewhere, the consume_subscription partial-success rule, and dry_run. dart itself is a stand-in
here (the end-to-end test runs the real one)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from engines.emr.definition import emr_engine
from engines.emr.engine import HANDLER
from engines.sdk import ActionContext, ActionFailure, DartApiError
from tests.engines.conftest import dataset_for
from tests.engines.emr_agent import HOLD, StepAgent, wait_for
from tests.engines.emr_moto import emr_moto_server, set_cluster_state

COLUMNS: list[dict[str, Any]] = [{"name": "id", "data_type": "BIGINT"}, {"name": "name", "data_type": "STRING"},
                                 {"name": "amount", "data_type": "NUMERIC", "precision": 10, "scale": 2},
                                 {"name": "at", "data_type": "TIMESTAMP", "date_pattern": "yyyy-MM-dd HH:mm:ss"}]


@pytest.fixture(scope="session")
def emr_url() -> Iterator[str]:
    with emr_moto_server() as url:
        yield url


@pytest.fixture
def aws(emr_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": emr_url,
                        "DART_EMR_POLL_SECONDS": "0.02"}.items():
        monkeypatch.setenv(name, value)
    kwargs = {"endpoint_url": emr_url, "region_name": "us-east-1"}
    bucket = f"emr-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", **kwargs)
    s3.create_bucket(Bucket=bucket)
    return {"url": emr_url, "emr": boto3.client("emr", **kwargs), "s3": s3, "bucket": bucket}


class Dart:
    """The dart calls the handlers make: reads (entities by path, actions by state), reports and patches."""

    def __init__(self, entities: dict[str, Any] | None = None, pending: list[dict[str, Any]] | None = None,
                 elements: list[dict[str, Any]] | None = None) -> None:
        self.entities = entities or {}
        self.pending = pending or []
        self.elements = elements or []
        self.progress: list[tuple[float | None, Any]] = []
        self.patches: list[dict[str, Any]] = []
        self.ended = False  # the action was ended elsewhere: the engine's token no longer works

    def get(self, path: str, params: Any = None) -> Any:
        if path == "/action":
            state = next(f.split(" = ")[1] for f in params["filters"] if f.startswith("state"))
            return [a for a in self.pending if a["data"]["state"] == state]
        if path.startswith("/action/"):
            if self.ended:
                raise DartApiError(401, "this launch token's action is FAILED")
            return {"data": {"state": "RUNNING"}}
        return self.entities[path]

    def subscription_elements(self, action_id: str) -> list[dict[str, Any]]:
        return self.elements

    def report_progress(self, action_id: str, progress: float | None = None, extra_data: Any = None) -> None:
        self.progress.append((progress, extra_data))

    def patch_datastore(self, datastore_id: str, **fields: Any) -> dict[str, Any]:
        self.patches.append(fields)
        return {}


def _context(aws: dict[str, Any], action_type: str, args: dict[str, Any], cluster: str | None = None,
             **options: Any) -> ActionContext:
    action = {"id": uuid.uuid4().hex[:10].upper(), "data": {"action_type_name": action_type, "args": args}}
    store = {"id": "DS1", "data": {
        "name": "mart", "engine_name": "emr_engine", "args": {"release_label": "emr-7.5.0", **options},
        "s3_artifacts_path": f"s3://{aws['bucket']}/datastores/mart/emr_engine/artifacts/DS1",
        "s3_logs_path": f"s3://{aws['bucket']}/datastores/mart/emr_engine/logs/DS1",
        "extra_data": {"cluster_id": cluster} if cluster else None}}
    return ActionContext({"id": "E1", "data": {}}, action, store)


def _run(context: ActionContext, dart: Dart) -> None:
    HANDLER(context, dart)  # type: ignore[arg-type]


def _cluster(aws: dict[str, Any], dart: Dart | None = None, **options: Any) -> str:
    dart = dart or Dart()
    _run(_context(aws, "start_datastore", {}, **{"instance_count": 2, **options}), dart)
    return str(dart.patches[0]["extra_data"]["cluster_id"])


def _body(aws: dict[str, Any], path: str) -> str:
    bucket, key = path[5:].split("/", 1)
    return str(aws["s3"].get_object(Bucket=bucket, Key=key)["Body"].read().decode())


# -- the cluster -----------------------------------------------------------------------------------------------


def test_start_sizes_the_cluster_from_the_pending_loads_and_publishes_its_endpoint(aws: dict[str, Any]) -> None:
    s3, bucket = aws["s3"], aws["bucket"]
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"sales/part-{i}.csv", Body=b"x" * 100)
    dataset = dataset_for(f"s3://{bucket}/sales", "CSV", "NONE", COLUMNS)
    pending = [
        {"data": {"state": "HAS_NEVER_RUN", "action_type_name": "load_dataset", "args": {"dataset_id": "D1"}}},
        {"data": {"state": "QUEUED", "action_type_name": "consume_subscription",
                  "args": {"subscription_id": "S1"}}},
        {"data": {"state": "HAS_NEVER_RUN", "action_type_name": "run_hive_script", "args": {}}},
    ]
    dart = Dart({"/dataset/D1": {"id": "D1", "data": dataset}, "/subscription/S1/element_stats": [
        {"state": "UNCONSUMED", "count": 2, "file_size_sum": 100}, {"state": "CONSUMED", "count": 9,
                                                                     "file_size_sum": 10_000}]}, pending)
    overrides = [{"Classification": "spark-defaults", "Properties": {"spark.executor.memory": "4G"}},
                 {"Classification": "spark-env", "Properties": {}, "Configurations": [
                     {"Classification": "export", "Properties": {"PYSPARK_PYTHON": "/usr/bin/python3"}}]}]
    # 400 bytes at 128 GB per m5.2xlarge core and a ratio of 1e-10: 12.8 bytes per core, so 32 cores.
    context = _context(aws, "start_datastore", {"bootstrap_script": "#!/bin/bash\necho hi\n",
                                                "configuration_overrides": json.dumps(overrides)},
                       data_to_freespace_ratio=1e-10, core_node_limit=40, ec2_keyname="ops",
                       cluster_tags={"team": "data"})
    _run(context, dart)
    cluster_id = dart.patches[0]["extra_data"]["cluster_id"]
    emr = aws["emr"]
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert (cluster["Name"], cluster["ReleaseLabel"], cluster["Status"]["State"]) == (
        "dart-datastore-DS1-mart", "emr-7.5.0", "WAITING")
    assert cluster["LogUri"] == f"s3://{aws['bucket']}/datastores/mart/emr_engine/logs/DS1"
    assert cluster["Ec2InstanceAttributes"]["Ec2KeyName"] == "ops"
    assert {t["Key"]: t["Value"] for t in cluster["Tags"]} == {"team": "data", "dart:datastore_id": "DS1"}
    groups = {g["InstanceGroupType"]: (g["RequestedInstanceCount"], g["InstanceType"])
              for g in emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]}
    assert groups == {"MASTER": (1, "m5.2xlarge"), "CORE": (32, "m5.2xlarge")}
    configs = {c["Classification"]: c for c in cluster["Configurations"]}
    assert configs["spark-defaults"]["Properties"] == {"spark.dynamicAllocation.enabled": "true",
                                                       "spark.executor.memory": "4G", "spark.executor.cores": "2"}
    assert configs["spark-env"]["Configurations"][0]["Properties"] == {"PYSPARK_PYTHON": "/usr/bin/python3"}
    assert configs["hdfs-site"]["Properties"]["dfs.replication"] == "1"
    [bootstrap] = emr.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
    script = f"s3://{aws['bucket']}/datastores/mart/emr_engine/artifacts/DS1/bootstrap_actions/" \
             f"bootstrap_script_{context.action_id}.sh"
    assert (bootstrap["Name"], bootstrap["ScriptPath"]) == ("dart: custom bootstrap_script", script)
    assert _body(aws, script) == "#!/bin/bash\necho hi\n"
    host = cluster["MasterPublicDnsName"]
    assert dart.patches == [{"extra_data": {"cluster_id": cluster_id}},
                            {"host": host, "port": 10000, "connection_url": f"jdbc:hive2://{host}:10000/default"}]
    assert dart.progress[-1] == (1.0, None)
    assert [a["Name"] for a in cluster["Applications"]] == ["Hadoop", "Hive", "Spark"]
    clusters = len(emr.list_clusters()["Clusters"])
    again = Dart(dart.entities, pending)
    _run(_context(aws, "start_datastore", {}, cluster_id, data_to_freespace_ratio=1e-10, core_node_limit=40),
         again)  # a re-run of a start whose cluster still runs waits for it rather than creating another
    assert again.patches == dart.patches[1:]
    assert len(emr.list_clusters()["Clusters"]) == clusters


def test_start_waits_out_bootstrapping_and_fails_a_cluster_that_never_becomes_waiting(aws: dict[str, Any]) -> None:
    set_cluster_state(aws["url"], "BOOTSTRAPPING")  # new clusters bootstrap until the test moves them
    try:
        outcomes: list[Any] = []

        def start(dart: Dart) -> threading.Thread:
            def go() -> None:
                try:
                    _run(_context(aws, "start_datastore", {}, instance_count=2), dart)
                    outcomes.append("started")
                except ActionFailure as exc:
                    outcomes.append(str(exc))

            thread = threading.Thread(target=go)
            thread.start()
            return thread

        def created(dart: Dart) -> str:
            return str(wait_for(lambda: dart.patches and dart.patches[0]["extra_data"]["cluster_id"],
                                what="the cluster"))

        ready, broken, abandoned = Dart(), Dart(), Dart()
        thread = start(ready)
        cluster_id = created(ready)
        assert len(ready.patches) == 1  # still bootstrapping: no endpoint yet
        set_cluster_state(aws["url"], "WAITING", cluster_id)
        thread.join(30)
        assert outcomes.pop() == "started" and ready.patches[1]["port"] == 10000

        thread = start(broken)
        cluster_id = created(broken)
        set_cluster_state(aws["url"], "TERMINATED_WITH_ERRORS", cluster_id, "Bootstrap failure")
        thread.join(30)
        assert outcomes.pop() == (f"start_datastore: EMR cluster {cluster_id} is TERMINATED_WITH_ERRORS, not "
                                  "WAITING: Bootstrap failure")

        thread = start(abandoned)
        cluster_id = created(abandoned)
        abandoned.ended = True
        thread.join(30)
        assert outcomes.pop() == (
            f"start_datastore: the action ended elsewhere (this launch token's action is FAILED) while EMR "
            f"cluster {cluster_id} was BOOTSTRAPPING (it keeps running: terminate_datastore ends it)")
    finally:
        set_cluster_state(aws["url"], None)


def test_instance_count_overrides_the_ratio_and_sizing_names_its_limits(aws: dict[str, Any]) -> None:
    dart = Dart()
    cluster_id = _cluster(aws, dart, instance_type="r5.xlarge", instance_count=5)
    groups = {g["InstanceGroupType"]: g["RequestedInstanceCount"]
              for g in aws["emr"].list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]}
    assert groups == {"MASTER": 1, "CORE": 4}
    with pytest.raises(ActionFailure, match="^start_datastore: cannot size a cluster of c5.large from "
                                            "data_to_freespace_ratio"):
        _run(_context(aws, "start_datastore", {}, instance_type="c5.large"), Dart())
    with pytest.raises(ActionFailure, match="^start_datastore: configuration_overrides is not JSON"):
        _run(_context(aws, "start_datastore", {"configuration_overrides": "[{"}, instance_count=2), Dart())


def test_terminate_ends_the_cluster_and_the_datastore_and_refuses_one_never_started(aws: dict[str, Any]) -> None:
    cluster_id = _cluster(aws)
    dart = Dart()
    _run(_context(aws, "terminate_datastore", {}, cluster_id), dart)
    assert aws["emr"].describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"] == "TERMINATED"
    assert dart.patches == [{"state": "DONE"}]
    with pytest.raises(ActionFailure, match="^terminate_datastore: Cannot terminate datastore before starting$"):
        _run(_context(aws, "terminate_datastore", {}), Dart())


# -- steps -----------------------------------------------------------------------------------------------------


def test_each_script_action_uploads_its_script_and_runs_one_step(aws: dict[str, Any]) -> None:
    cluster_id = _cluster(aws)
    root = f"s3://{aws['bucket']}/datastores/mart/emr_engine/artifacts/DS1/steps"
    cases = [("run_hive_script", {"script_contents": "SHOW TABLES;"}),
             ("run_impala_script", {"script_contents": "INVALIDATE METADATA;"}),
             ("run_pyspark_script", {"script_contents": "print('hi')"}),
             ("copy_hdfs_to_s3", {"source_hdfs_path": "hdfs:///user/hive/warehouse/t",
                                  "destination_s3_path": f"s3://{aws['bucket']}/out"})]
    ids = []
    with StepAgent(aws["url"]) as agent:
        for kind, args in cases:
            context = _context(aws, kind, args, cluster_id)
            dart = Dart()
            _run(context, dart)
            ids.append(context.action_id)
            assert dart.progress[-1] == (1.0, None)
            [submitted] = dart.progress[0][1]["steps"]
            assert agent.handled[submitted["step_id"]] == "COMPLETED"
    steps = {s["Name"]: s["Config"]["Args"] for s in aws["emr"].list_steps(ClusterId=cluster_id)["Steps"]}
    hive, impala, spark, copy = ids
    assert steps == {
        f"dart: (action_id={hive},step_num=1,steps_total=1) run_hive_script_{hive}.hql": [
            "hive-script", "--run-hive-script", "--args", "-f", f"{root}/hive/run_hive_script_{hive}.hql"],
        f"dart: (action_id={impala},step_num=1,steps_total=1) run_impala_script_{impala}.sql": [
            "bash", "-c", (f"aws s3 cp {root}/impala/run_impala_script_{impala}.sql "
                           f"/tmp/run_impala_script_{impala}.sql && impala-shell -f "
                           f"/tmp/run_impala_script_{impala}.sql")],
        f"dart: (action_id={spark},step_num=1,steps_total=1) run_pyspark_script_{spark}.py": [
            "spark-submit", "--deploy-mode", "cluster", f"{root}/misc/run_pyspark_script_{spark}.py"],
        f"dart: (action_id={copy},step_num=1,steps_total=1) s3-dist-cp hdfs to s3": [
            "s3-dist-cp", "--src", "hdfs:///user/hive/warehouse/t/", "--dest", f"s3://{aws['bucket']}/out/"],
    }
    assert _body(aws, f"{root}/hive/run_hive_script_{hive}.hql") == "SHOW TABLES;"
    assert _body(aws, f"{root}/impala/run_impala_script_{impala}.sql") == "INVALIDATE METADATA;"
    assert _body(aws, f"{root}/misc/run_pyspark_script_{spark}.py") == "print('hi')"
    assert {s["Config"]["Jar"] for s in aws["emr"].list_steps(ClusterId=cluster_id)["Steps"]} == {
        "command-runner.jar"}


def test_a_failed_step_fails_the_action_with_its_reason_and_log(aws: dict[str, Any]) -> None:
    cluster_id = _cluster(aws)
    failure = {"reason": "Unknown error.", "message": "FAILED: ParseException line 1:0 cannot recognize input",
               "log_file": "s3://logs/j-1/steps/s-1/stderr.gz"}
    context = _context(aws, "run_hive_script", {"script_contents": "SELEC 1;"}, cluster_id)
    with StepAgent(aws["url"], lambda step: failure), pytest.raises(ActionFailure) as failed:
        _run(context, Dart())
    step_id = aws["emr"].list_steps(ClusterId=cluster_id)["Steps"][0]["Id"]
    assert str(failed.value) == (
        f"run_hive_script: step 1 of 1 (run_hive_script_{context.action_id}.hql, {step_id}) FAILED: Unknown "
        "error.: FAILED: ParseException line 1:0 cannot recognize input (log: s3://logs/j-1/steps/s-1/stderr.gz)")


def test_a_step_the_cluster_cancels_fails_the_action(aws: dict[str, Any]) -> None:
    cluster_id = _cluster(aws)
    context = _context(aws, "run_pyspark_script", {"script_contents": "x"}, cluster_id)
    with StepAgent(aws["url"], lambda step: "CANCELLED"), pytest.raises(ActionFailure,
                                                                         match=r"\) CANCELLED$"):
        _run(context, Dart())


def test_an_action_ended_elsewhere_cancels_its_running_step(aws: dict[str, Any]) -> None:
    cluster_id = _cluster(aws)
    dart = Dart()
    context = _context(aws, "run_hive_script", {"script_contents": "SELECT 1;"}, cluster_id)
    with StepAgent(aws["url"], lambda step: HOLD) as agent:

        def end_it() -> None:
            wait_for(lambda: agent.handled, what="the step to run")
            dart.ended = True

        ender = threading.Thread(target=end_it)
        ender.start()
        with pytest.raises(ActionFailure, match="action ended elsewhere .*: step s-[A-Z0-9]+ was cancelled$"):
            _run(context, dart)
        ender.join()
    [step] = aws["emr"].list_steps(ClusterId=cluster_id)["Steps"]
    assert step["Status"]["State"] == "CANCELLED"


# -- loads -----------------------------------------------------------------------------------------------------


def _partitioned(aws: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    s3, bucket = aws["s3"], aws["bucket"]
    for day in ("2026-01-01", "2026-01-02"):
        s3.put_object(Bucket=bucket, Key=f"feed/{day}/part-0.csv.gz", Body=b"x" * 10)
    dataset = dataset_for(f"s3://{bucket}/feed", "CSV", "GZIP", COLUMNS, table_name="feed",
                          partitions=[{"name": "day", "data_type": "DATE"}])
    elements = [{"s3_path": f"s3://{bucket}/feed/{d}/part-0.csv.gz", "file_size": 10}
                for d in ("2026-01-01", "2026-01-02")]
    return dataset, elements


def test_load_dataset_submits_a_spark_load_that_follows_the_dataset(aws: dict[str, Any]) -> None:
    cluster_id = _cluster(aws)
    dataset, _ = _partitioned(aws)
    dart = Dart({"/dataset/D1": {"id": "D1", "data": dataset}})
    context = _context(aws, "load_dataset", {"dataset_id": "D1", "target_table_name": "feed_pq",
                                             "target_compression": "SNAPPY"}, cluster_id)
    with StepAgent(aws["url"]):
        _run(context, dart)
    root = f"s3://{aws['bucket']}/datastores/mart/emr_engine/artifacts/DS1/steps"
    spec_path = f"{root}/spark/load_{context.action_id}.json"
    steps = [s["Config"]["Args"] for s in reversed(aws["emr"].list_steps(ClusterId=cluster_id)["Steps"])]
    assert steps == [["spark-submit", "--deploy-mode", "cluster", f"{root}/spark/dart_spark_load.py", spec_path],
                     ["spark-sql", "-e", "ANALYZE TABLE `feed_pq` COMPUTE STATISTICS"]]
    spec = json.loads(_body(aws, spec_path))
    bucket = aws["bucket"]
    assert spec["files"] == [f"s3://{bucket}/feed/2026-01-01/part-0.csv.gz",
                             f"s3://{bucket}/feed/2026-01-02/part-0.csv.gz"]
    assert spec["source"] == {"format": "csv", "columns": ["id", "name", "amount", "at"], "options": {
        "sep": ",", "quote": '"', "escape": "\\", "nullValue": "", "header": "true", "mode": "FAILFAST"}}
    assert spec["select"] == [
        "CAST(`id` AS BIGINT) AS `id`", "`name` AS `name`", "CAST(`amount` AS DECIMAL(10,2)) AS `amount`",
        "CAST(to_timestamp(`at`, 'yyyy-MM-dd HH:mm:ss') AS TIMESTAMP) AS `at`",
        "CAST(regexp_extract(input_file_name(), '/feed/([^/]+)/', 1) AS DATE) AS `day`"]
    assert spec["create_table"] == ("CREATE TABLE IF NOT EXISTS `feed_pq` (\n  `id` BIGINT,\n  `name` STRING,\n"
                                    "  `amount` DECIMAL(10,2),\n  `at` TIMESTAMP\n)\nPARTITIONED BY (`day` DATE)\n"
                                    "STORED AS PARQUET")
    assert (spec["settings"], spec["mode"]) == ({"spark.sql.parquet.compression.codec": "snappy"}, "append")
    assert _body(aws, f"{root}/spark/dart_spark_load.py").startswith('"""The program the emr_engine')


def test_consume_subscription_marks_elements_consumed_when_only_a_later_step_failed(aws: dict[str, Any]) -> None:
    cluster_id = _cluster(aws)
    dataset, elements = _partitioned(aws)
    entities = {"/subscription/S1": {"id": "S1", "data": {"dataset_id": "D1"}},
                "/dataset/D1": {"id": "D1", "data": dataset}}

    def analyze_fails(step: dict[str, Any]) -> str | dict[str, str]:
        return {"reason": "statistics failed"} if "analyze" in step["Name"] else "COMPLETED"

    late = _context(aws, "consume_subscription", {"subscription_id": "S1"}, cluster_id)
    with StepAgent(aws["url"], analyze_fails), pytest.raises(ActionFailure) as failed:
        _run(late, Dart(entities, elements=elements))
    assert late.consume_subscription_state == "SUCCESS"
    assert str(failed.value).startswith("consume_subscription: Although the following error occurred, the "
                                        "important EMR steps completed successfully and the subscription "
                                        "elements have been marked as CONSUMED: step 2 of 2 (analyze table feed")
    spec = json.loads(_body(aws, f"s3://{aws['bucket']}/datastores/mart/emr_engine/artifacts/DS1/steps/spark/"
                                 f"load_{late.action_id}.json"))
    assert "STORED AS TEXTFILE" in spec["create_table"]  # consume_subscription's target default: TEXTFILE GZIP
    assert spec["settings"]["mapreduce.output.fileoutputformat.compress.codec"].endswith("GzipCodec")

    early = _context(aws, "consume_subscription", {"subscription_id": "S1"}, cluster_id)
    with StepAgent(aws["url"], lambda step: {"reason": "OOM"}), pytest.raises(ActionFailure) as failed:
        _run(early, Dart(entities, elements=elements))
    assert early.consume_subscription_state is None
    assert "the subscription elements have been reverted to UNCONSUMED: step 1 of 2" in str(failed.value)

    empty = _context(aws, "consume_subscription", {"subscription_id": "S1"}, cluster_id)
    dart = Dart(entities)
    _run(empty, dart)  # nothing assigned: nothing submitted, and the action succeeds
    assert (empty.consume_subscription_state, dart.progress) == ("SUCCESS", [(1.0, {"files": 0})])


def test_dry_run_writes_the_planned_steps_and_submits_nothing(aws: dict[str, Any]) -> None:
    dataset, _ = _partitioned(aws)
    before = len(aws["emr"].list_clusters()["Clusters"])
    dart = Dart({"/dataset/D1": {"id": "D1", "data": dataset}})
    _run(_context(aws, "start_datastore", {}, dry_run=True, instance_count=3), dart)
    assert dart.progress[-1][1]["run_job_flow"]["Instances"]["InstanceGroups"][1]["InstanceCount"] == 2
    load = _context(aws, "load_dataset", {"dataset_id": "D1"}, dry_run=True)
    _run(load, dart)
    progress, planned = dart.progress[-1]
    assert progress == 1.0
    assert [s["step"]["HadoopJarStep"]["Args"][0] for s in planned["steps"]] == ["spark-submit", "spark-sql"]
    assert [s["action_considered_successful"] for s in planned["steps"]] == [False, True]
    assert len(aws["emr"].list_clusters()["Clusters"]) == before and dart.patches == []
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix="datastores/")


def test_the_registration_keeps_the_original_names() -> None:
    body = emr_engine()
    assert [a["name"] for a in body["supported_action_types"]] == [
        "start_datastore", "terminate_datastore", "load_dataset", "consume_subscription", "run_hive_script",
        "run_impala_script", "run_pyspark_script", "copy_hdfs_to_s3"]
    assert {"release_label", "instance_type", "instance_count", "data_to_freespace_ratio", "dry_run",
            "ec2_keyname"} <= set(body["options_json_schema"]["properties"])


def _spec(fmt: str, compression: str = "NONE", args: dict[str, Any] | None = None,
          **fields: Any) -> dict[str, Any]:
    from engines.data.datasets import Dataset
    from engines.emr.load import spec

    columns = fields.pop("columns", COLUMNS[:2])
    data = dataset_for("s3://b/in", fmt, compression, columns, table_name="t", **fields)
    files = [("s3://b/in/a", 1), ("s3://b/in/b", 2)]
    return spec(Dataset.from_api({"id": "D1", "data": data}), files, args or {}, "A1")


def test_the_load_spec_reads_every_format_and_maps_each_load_type() -> None:
    json_lines = _spec("JSON", columns=[{"name": "id", "data_type": "BIGINT", "path": "user.id"},
                                        {"name": "name", "data_type": "STRING"}])
    assert (json_lines["source"], json_lines["select"]) == ({"format": "text"}, [
        "CAST(get_json_object(value, '$.user.id') AS BIGINT) AS `id`", "get_json_object(value, '$.name') AS `name`"])
    parquet = _spec("PARQUET", args={"target_file_format": "TEXTFILE", "target_row_format": "JSON",
                                     "target_compression": "BZ2"})
    assert parquet["source"] == {"format": "parquet"}
    assert parquet["create_table"].endswith("ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\n"
                                            "STORED AS TEXTFILE")
    assert parquet["settings"]["mapreduce.output.fileoutputformat.compress.codec"].endswith("BZip2Codec")
    regex = _spec("CSV", data_format={"file_format": "TEXTFILE", "row_format": "REGEX",
                                      "regex_input": "^(\\d+) (.*)$"})
    assert regex["select"][1] == "regexp_extract(value, '^(\\\\d+) (.*)$', 2) AS `name`"
    assert _spec("CSV", load_type="RELOAD_LAST")["files"] == ["s3://b/in/b"]
    assert _spec("CSV", load_type="RELOAD_ALL")["mode"] == "overwrite"
    merge = _spec("CSV", load_type="MERGE", merge_keys=["id"])
    assert (merge["mode"], merge["merge_keys"], merge["stage_table"]) == ("merge", ["id"], "t_stage_for_action_A1")
    delimited = _spec("CSV", args={"target_file_format": "TEXTFILE", "target_row_format": "DELIMITED",
                                   "target_delimited_by": "|", "target_null_string": "\\N"})
    assert delimited["create_table"].endswith("ROW FORMAT DELIMITED FIELDS TERMINATED BY '|' ESCAPED BY '\\\\'\n"
                                              "NULL DEFINED AS '\\\\N'\nSTORED AS TEXTFILE")
    with pytest.raises(ActionFailure, match="is RCFILE: the Spark SQL load reads TEXTFILE and PARQUET"):
        _spec("CSV", data_format={"file_format": "RCFILE", "row_format": "NONE"})
    with pytest.raises(ActionFailure, match="target_compression BZ2 is not one Parquet offers"):
        _spec("CSV", args={"target_file_format": "PARQUET", "target_compression": "BZ2"})
    with pytest.raises(ValueError, match="is MERGE but has neither merge_keys nor primary_keys"):
        _spec("CSV", load_type="MERGE")
