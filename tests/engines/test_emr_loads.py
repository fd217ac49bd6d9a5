"""The emr_engine's loads against moto's EMR and S3: load_dataset's Spark SQL step and the spec it uploads,
consume_subscription's partial-success rule, dry_run, and the load spec of every dataset format and load type
(engines/emr/spark_load.py runs it on the cluster)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engines.emr.definition import emr_engine
from engines.sdk import ActionFailure
from tests.engines import emr_support
from tests.engines.conftest import dataset_for
from tests.engines.emr_agent import StepAgent
from tests.engines.emr_support import COLUMNS, Dart, action_context, run_handler, s3_text, started_cluster

aws, emr_url = emr_support.aws, emr_support.emr_url  # the fixtures


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
    cluster_id = started_cluster(aws)
    dataset, _ = _partitioned(aws)
    dart = Dart({"/dataset/D1": {"id": "D1", "data": dataset}})
    context = action_context(aws, "load_dataset", {"dataset_id": "D1", "target_table_name": "feed_pq",
                                             "target_compression": "SNAPPY"}, cluster_id)
    with StepAgent(aws["url"]):
        run_handler(context, dart)
    root = f"s3://{aws['bucket']}/datastores/mart/emr_engine/artifacts/DS1/steps"
    spec_path = f"{root}/spark/load_{context.action_id}.json"
    steps = [s["Config"]["Args"] for s in reversed(aws["emr"].list_steps(ClusterId=cluster_id)["Steps"])]
    assert steps == [["spark-submit", "--deploy-mode", "cluster", f"{root}/spark/dart_spark_load.py", spec_path],
                     ["spark-sql", "-e", "ANALYZE TABLE `feed_pq` COMPUTE STATISTICS"]]
    spec = json.loads(s3_text(aws, spec_path))
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
    assert s3_text(aws, f"{root}/spark/dart_spark_load.py").startswith('"""The program the emr_engine')


def test_consume_subscription_marks_elements_consumed_when_only_a_later_step_failed(aws: dict[str, Any]) -> None:
    cluster_id = started_cluster(aws)
    dataset, elements = _partitioned(aws)
    entities = {"/subscription/S1": {"id": "S1", "data": {"dataset_id": "D1"}},
                "/dataset/D1": {"id": "D1", "data": dataset}}

    def analyze_fails(step: dict[str, Any]) -> str | dict[str, str]:
        return {"reason": "statistics failed"} if "analyze" in step["Name"] else "COMPLETED"

    late = action_context(aws, "consume_subscription", {"subscription_id": "S1"}, cluster_id)
    with StepAgent(aws["url"], analyze_fails), pytest.raises(ActionFailure) as failed:
        run_handler(late, Dart(entities, elements=elements))
    assert late.consume_subscription_state == "SUCCESS"
    assert str(failed.value).startswith("consume_subscription: Although the following error occurred, the "
                                        "important EMR steps completed successfully and the subscription "
                                        "elements have been marked as CONSUMED: step 2 of 2 (analyze table feed")
    spec = json.loads(s3_text(aws, f"s3://{aws['bucket']}/datastores/mart/emr_engine/artifacts/DS1/steps/spark/"
                                 f"load_{late.action_id}.json"))
    assert "STORED AS TEXTFILE" in spec["create_table"]  # consume_subscription's target default: TEXTFILE GZIP
    assert spec["settings"]["mapreduce.output.fileoutputformat.compress.codec"].endswith("GzipCodec")

    early = action_context(aws, "consume_subscription", {"subscription_id": "S1"}, cluster_id)
    with StepAgent(aws["url"], lambda step: {"reason": "OOM"}), pytest.raises(ActionFailure) as failed:
        run_handler(early, Dart(entities, elements=elements))
    assert early.consume_subscription_state is None
    assert "the subscription elements have been reverted to UNCONSUMED: step 1 of 2" in str(failed.value)

    empty = action_context(aws, "consume_subscription", {"subscription_id": "S1"}, cluster_id)
    dart = Dart(entities)
    run_handler(empty, dart)  # nothing assigned: nothing submitted, and the action succeeds
    assert (empty.consume_subscription_state, dart.progress) == ("SUCCESS", [(1.0, {"files": 0})])


def test_dry_run_writes_the_planned_steps_and_submits_nothing(aws: dict[str, Any]) -> None:
    dataset, _ = _partitioned(aws)
    before = len(aws["emr"].list_clusters()["Clusters"])
    dart = Dart({"/dataset/D1": {"id": "D1", "data": dataset}})
    run_handler(action_context(aws, "start_datastore", {}, dry_run=True, instance_count=3), dart)
    assert dart.progress[-1][1]["run_job_flow"]["Instances"]["InstanceGroups"][1]["InstanceCount"] == 2
    load = action_context(aws, "load_dataset", {"dataset_id": "D1"}, dry_run=True)
    run_handler(load, dart)
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
    with pytest.raises(ActionFailure, match="is GZIP but s3://b/in/a does not end in .gz: Hadoop picks a file's "
                                            "codec by its extension"):
        _spec("CSV", "GZIP")
    with pytest.raises(ValueError, match="is MERGE but has neither merge_keys nor primary_keys"):
        _spec("CSV", load_type="MERGE")
