"""The program the emr_engine's loads run on the cluster: ``spark-submit dart_spark_load.py <spec.json>``. It
reads the spec (engines/emr/load.py writes it), reads the files, selects each column's expression, creates the
target table if absent and writes it by the dataset's load type (append, skipping files an earlier append
loaded; overwrite for RELOAD_*; MERGE through a stage table). It imports only PySpark and the standard
library: it is uploaded as it is."""

from __future__ import annotations

import json
import sys
from typing import Any


def read_spec(spark: Any, path: str) -> dict[str, Any]:
    text = "\n".join(row.value for row in spark.read.text(path, wholetext=True).collect())
    found: dict[str, Any] = json.loads(text)
    return found


def read_files(spark: Any, spec: dict[str, Any]) -> Any:
    source = spec["source"]
    if source["format"] == "parquet":
        return spark.read.parquet(*spec["files"])
    if source["format"] == "text":
        return spark.read.text(spec["files"])
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(name, StringType(), True) for name in source["columns"]])
    return spark.read.options(**source["options"]).schema(schema).csv(spec["files"])


LOADED = "dart_loaded_files"  # (target, s3_path, action_id): what appends already brought into each table


def not_loaded(spark: Any, spec: dict[str, Any]) -> list[str]:
    """The spec's files no earlier append loaded into its table, so a re-run (a lost check-in, an element
    assigned again) does not add their rows twice. RELOAD_* and MERGE are idempotent by themselves."""
    if spec["mode"] != "append":
        return list(spec["files"])
    spark.sql(f"CREATE TABLE IF NOT EXISTS {LOADED} (target STRING, s3_path STRING, action_id STRING) "
              "STORED AS PARQUET")
    done = {row.s3_path for row in spark.table(LOADED).where(f"target = '{spec['table']}'").collect()}
    return [f for f in spec["files"] if f not in done]


def record_loaded(spark: Any, spec: dict[str, Any], files: list[str]) -> None:
    if spec["mode"] == "append":
        rows = [(spec["table"], path, spec["action_id"]) for path in files]
        spark.createDataFrame(rows, "target STRING, s3_path STRING, action_id STRING").write.insertInto(LOADED)


def write(spark: Any, spec: dict[str, Any], rows: Any) -> None:
    table = f"`{spec['table']}`"
    if spec["mode"] == "merge":
        # Keep the table's rows whose keys the load does not bring, then every loaded row: in a stage table,
        # because Spark cannot overwrite a table it is reading.
        stage = f"`{spec['stage_table']}`"
        keys = spec["merge_keys"]
        columns = spark.table(table).columns  # insertInto goes by position; a join puts its keys first
        kept = spark.table(table).join(rows.select(*keys).distinct(), keys, "left_anti").select(*columns)
        merged = kept.unionByName(rows.dropDuplicates(keys).select(*columns))
        spark.sql(f"DROP TABLE IF EXISTS {stage}")
        merged.write.saveAsTable(spec["stage_table"], format="parquet")
        spark.sql(f"TRUNCATE TABLE {table}")
        spark.table(stage).select(*columns).write.insertInto(spec["table"])
        spark.sql(f"DROP TABLE IF EXISTS {stage}")
        return
    if spec["mode"] == "overwrite":
        spark.sql(f"TRUNCATE TABLE {table}")
    rows.write.insertInto(spec["table"])


def main(argv: list[str]) -> int:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(f"dart load {argv[0]}").enableHiveSupport().getOrCreate()
    spec = read_spec(spark, argv[0])
    for name, value in {"hive.exec.dynamic.partition": "true", "hive.exec.dynamic.partition.mode": "nonstrict",
                        **spec["settings"]}.items():
        spark.sql(f"SET {name}={value}")
    spark.sql(spec["create_table"])
    files = not_loaded(spark, spec)
    if files:
        rows = read_files(spark, {**spec, "files": files}).selectExpr(*spec["select"])
        write(spark, spec, rows)
        record_loaded(spark, spec, files)
    print(f"dart: loaded {spec['table']} from {len(files)} file(s) ({len(spec['files']) - len(files)} were "
          "loaded before)")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
