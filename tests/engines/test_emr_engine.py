"""The emr_engine's cluster and steps against moto's EMR and S3 over loopback (tests/engines/emr_moto.py adds
the CancelSteps, step and cluster states and FailureDetails moto lacks): the exact RunJobFlow the cluster gets
(instance groups sized from the pending loads, release label, bootstrap, configurations), the wait through
BOOTSTRAPPING, termination, each script action's step and uploaded script, steps driven to COMPLETED, FAILED
and CANCELLED by the step agent, and a step cancelled when its action ends elsewhere. dart itself is a
stand-in here (the end-to-end test runs the real one)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from engines.sdk import ActionFailure
from tests.engines import emr_support
from tests.engines.conftest import dataset_for
from tests.engines.emr_agent import HOLD, StepAgent, wait_for
from tests.engines.emr_moto import set_cluster_state
from tests.engines.emr_support import COLUMNS, Dart, action_context, run_handler, s3_text, started_cluster

aws, emr_url = emr_support.aws, emr_support.emr_url  # the fixtures

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
    context = action_context(aws, "start_datastore", {"bootstrap_script": "#!/bin/bash\necho hi\n",
                                                "configuration_overrides": json.dumps(overrides)},
                       data_to_freespace_ratio=1e-10, core_node_limit=40, ec2_keyname="ops",
                       cluster_tags={"team": "data"})
    run_handler(context, dart)
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
    assert s3_text(aws, script) == "#!/bin/bash\necho hi\n"
    host = cluster["MasterPublicDnsName"]
    assert dart.patches == [{"extra_data": {"cluster_id": cluster_id}},
                            {"host": host, "port": 10000, "connection_url": f"jdbc:hive2://{host}:10000/default"}]
    assert dart.progress[-1] == (1.0, None)
    assert [a["Name"] for a in cluster["Applications"]] == ["Hadoop", "Hive", "Spark"]
    clusters = len(emr.list_clusters()["Clusters"])
    again = Dart(dart.entities, pending)
    run_handler(action_context(aws, "start_datastore", {}, cluster_id, data_to_freespace_ratio=1e-10, core_node_limit=40),
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
                    run_handler(action_context(aws, "start_datastore", {}, instance_count=2), dart)
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
    cluster_id = started_cluster(aws, dart, instance_type="r5.xlarge", instance_count=5)
    groups = {g["InstanceGroupType"]: g["RequestedInstanceCount"]
              for g in aws["emr"].list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]}
    assert groups == {"MASTER": 1, "CORE": 4}
    with pytest.raises(ActionFailure, match="^start_datastore: cannot size a cluster of c5.large from "
                                            "data_to_freespace_ratio"):
        run_handler(action_context(aws, "start_datastore", {}, instance_type="c5.large"), Dart())
    with pytest.raises(ActionFailure, match="^start_datastore: configuration_overrides is not JSON"):
        run_handler(action_context(aws, "start_datastore", {"configuration_overrides": "[{"}, instance_count=2), Dart())


def test_terminate_ends_the_cluster_and_the_datastore_and_refuses_one_never_started(aws: dict[str, Any]) -> None:
    cluster_id = started_cluster(aws)
    dart = Dart()
    run_handler(action_context(aws, "terminate_datastore", {}, cluster_id), dart)
    assert aws["emr"].describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"] == "TERMINATED"
    assert dart.patches == [{"state": "DONE"}]
    with pytest.raises(ActionFailure, match="^terminate_datastore: Cannot terminate datastore before starting$"):
        run_handler(action_context(aws, "terminate_datastore", {}), Dart())


# -- steps -----------------------------------------------------------------------------------------------------


def test_each_script_action_uploads_its_script_and_runs_one_step(aws: dict[str, Any]) -> None:
    cluster_id = started_cluster(aws)
    root = f"s3://{aws['bucket']}/datastores/mart/emr_engine/artifacts/DS1/steps"
    cases = [("run_hive_script", {"script_contents": "SHOW TABLES;"}),
             ("run_impala_script", {"script_contents": "INVALIDATE METADATA;"}),
             ("run_pyspark_script", {"script_contents": "print('hi')"}),
             ("copy_hdfs_to_s3", {"source_hdfs_path": "hdfs:///user/hive/warehouse/t",
                                  "destination_s3_path": f"s3://{aws['bucket']}/out"})]
    ids = []
    with StepAgent(aws["url"]) as agent:
        for kind, args in cases:
            context = action_context(aws, kind, args, cluster_id)
            dart = Dart()
            run_handler(context, dart)
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
    assert s3_text(aws, f"{root}/hive/run_hive_script_{hive}.hql") == "SHOW TABLES;"
    assert s3_text(aws, f"{root}/impala/run_impala_script_{impala}.sql") == "INVALIDATE METADATA;"
    assert s3_text(aws, f"{root}/misc/run_pyspark_script_{spark}.py") == "print('hi')"
    assert {s["Config"]["Jar"] for s in aws["emr"].list_steps(ClusterId=cluster_id)["Steps"]} == {
        "command-runner.jar"}


def test_a_failed_step_fails_the_action_with_its_reason_and_log(aws: dict[str, Any]) -> None:
    cluster_id = started_cluster(aws)
    failure = {"reason": "Unknown error.", "message": "FAILED: ParseException line 1:0 cannot recognize input",
               "log_file": "s3://logs/j-1/steps/s-1/stderr.gz"}
    context = action_context(aws, "run_hive_script", {"script_contents": "SELEC 1;"}, cluster_id)
    with StepAgent(aws["url"], lambda step: failure), pytest.raises(ActionFailure) as failed:
        run_handler(context, Dart())
    step_id = aws["emr"].list_steps(ClusterId=cluster_id)["Steps"][0]["Id"]
    assert str(failed.value) == (
        f"run_hive_script: step 1 of 1 (run_hive_script_{context.action_id}.hql, {step_id}) FAILED: Unknown "
        "error.: FAILED: ParseException line 1:0 cannot recognize input (log: s3://logs/j-1/steps/s-1/stderr.gz)")


def test_a_step_the_cluster_cancels_fails_the_action(aws: dict[str, Any]) -> None:
    cluster_id = started_cluster(aws)
    context = action_context(aws, "run_pyspark_script", {"script_contents": "x"}, cluster_id)
    with StepAgent(aws["url"], lambda step: "CANCELLED"), pytest.raises(ActionFailure,
                                                                         match=r"\) CANCELLED$"):
        run_handler(context, Dart())


def test_an_action_ended_elsewhere_cancels_its_running_step(aws: dict[str, Any]) -> None:
    cluster_id = started_cluster(aws)
    dart = Dart()
    context = action_context(aws, "run_hive_script", {"script_contents": "SELECT 1;"}, cluster_id)
    with StepAgent(aws["url"], lambda step: HOLD) as agent:

        def end_it() -> None:
            wait_for(lambda: agent.handled, what="the step to run")
            dart.ended = True

        ender = threading.Thread(target=end_it)
        ender.start()
        with pytest.raises(ActionFailure, match="action ended elsewhere .*: step s-[A-Z0-9]+ was cancelled$"):
            run_handler(context, dart)
        ender.join()
    [step] = aws["emr"].list_steps(ClusterId=cluster_id)["Steps"]
    assert step["Status"]["State"] == "CANCELLED"
