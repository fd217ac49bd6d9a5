"""load_dataset and consume_subscription as Spark SQL on the cluster: the engine turns the dataset (format,
compression, columns, partitions, load type) and the action's target_* options into a load spec (the files,
how to read them, one SQL expression per column, the target table's DDL and output settings); a generic
program (engines/emr/spark_load.py) runs it with ``spark-submit``. Then statistics are computed, a step whose
failure no longer undoes the load (the consume_subscription partial-success rule)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engines.data.datasets import Column, Dataset
from engines.data.loads import Files, files_to_load
from engines.emr import spark_load
from engines.emr.steps import Plan, Step
from engines.sdk import ActionFailure
from services.domain.s3_range import split_s3

HIVE_TYPES = {"STRING": "STRING", "VARCHAR": "STRING", "BIGINT": "BIGINT", "INT": "INT", "SMALLINT": "INT",
              "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "BOOLEAN": "BOOLEAN", "DATE": "DATE", "DATETIME": "TIMESTAMP",
              "TIMESTAMP": "TIMESTAMP"}
TEXT_CODECS = {"GZIP": "org.apache.hadoop.io.compress.GzipCodec", "BZ2": "org.apache.hadoop.io.compress.BZip2Codec",
               "SNAPPY": "org.apache.hadoop.io.compress.SnappyCodec"}
EXTENSIONS = {"GZIP": ".gz", "BZ2": ".bz2", "SNAPPY": ".snappy"}
PARQUET_CODECS = {"NONE": "uncompressed", "GZIP": "gzip", "SNAPPY": "snappy"}


def hive_type(column: Column) -> str:
    if column.data_type == "NUMERIC":
        return "DECIMAL({},{})".format(*column.numeric)
    return HIVE_TYPES[column.data_type]


def _quote(name: str) -> str:
    return f"`{name}`"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cast(column: Column, raw: str) -> str:
    """The SQL expression that turns the raw text (or typed Parquet value) ``raw`` into the column's type; the
    original's Hive casts, with the same UNIX_TIMESTAMP_SECONDS/MILLIS date patterns."""
    kind = hive_type(column)
    if kind == "STRING":
        return raw
    if column.data_type in ("DATE", "DATETIME", "TIMESTAMP") and column.date_pattern:
        pattern = column.date_pattern
        if pattern.upper() == "UNIX_TIMESTAMP_SECONDS":
            value = f"timestamp_seconds(CAST({raw} AS BIGINT))"
        elif pattern.upper() == "UNIX_TIMESTAMP_MILLIS":
            value = f"timestamp_millis(CAST({raw} AS BIGINT))"
        else:
            value = f"to_timestamp({raw}, {_literal(pattern)})"
        return f"CAST({value} AS {kind})"
    return f"CAST({raw} AS {kind})"


def _format(dataset: Dataset) -> dict[str, Any]:
    return dict(dataset.extra.get("data_format") or {})


def source(dataset: Dataset) -> tuple[dict[str, Any], list[str]]:
    """How spark_load reads the files, and each file column's raw SQL expression over what it read."""
    fmt, columns = _format(dataset), dataset.columns
    if dataset.file_format == "PARQUET":
        return {"format": "parquet"}, [_quote(c.name) for c in columns]
    if dataset.file_format == "RCFILE":
        raise ActionFailure(f"dataset {dataset.name} is RCFILE: the Spark SQL load reads TEXTFILE and PARQUET")
    if dataset.row_format == "JSON":
        return {"format": "text"}, [f"get_json_object(value, {_literal('$.' + (c.path or c.name))})"
                                    for c in columns]
    if dataset.row_format == "REGEX":
        regex = fmt.get("regex_input")
        if not regex:
            raise ActionFailure(f"dataset {dataset.name} has row_format REGEX but no regex_input")
        return {"format": "text"}, [f"regexp_extract(value, {_literal(regex)}, {i})"
                                    for i, _ in enumerate(columns, 1)]
    if dataset.num_header_rows > 1:
        raise ActionFailure(f"dataset {dataset.name} has {dataset.num_header_rows} header rows: Spark's CSV reader "
                            "skips at most one")
    options = {"sep": dataset.delimited_by or ",", "quote": dataset.quoted_by or "",
               "escape": dataset.escaped_by or "\\", "nullValue": dataset.null_string or "",
               "header": "true" if dataset.num_header_rows == 1 else "false", "mode": "FAILFAST"}
    return {"format": "csv", "options": options, "columns": [c.name for c in columns]}, \
        [_quote(c.name) for c in columns]


def partition_expressions(dataset: Dataset) -> list[str]:
    """Partition values from each file's key: ``name=value`` folders when hive compatible, else the folders
    under the dataset's location in order (the original renamed them to ``name=value`` in HDFS)."""
    found = []
    location_key = re.escape(split_s3(dataset.location)[1].strip("/"))
    for i, column in enumerate(dataset.partitions):
        if dataset.hive_compatible_partition_folders:
            regex = f"/{re.escape(column.name)}=([^/]+)/"
        else:
            root = f"/{location_key}/" if location_key else "://[^/]+/"
            regex = root + "[^/]+/" * i + "([^/]+)/"
        found.append(cast(column, f"regexp_extract(input_file_name(), {_literal(regex)}, 1)"))
    return found


def target(dataset: Dataset, args: dict[str, Any], table: str) -> tuple[str, dict[str, str]]:
    """The target table's DDL and the output settings of its format and compression."""
    fmt = _format(dataset)
    file_format = args.get("target_file_format") or dataset.file_format
    row_format = args.get("target_row_format") or dataset.row_format
    compression = args.get("target_compression") or dataset.compression
    columns = ",\n  ".join(f"{_quote(c.name)} {hive_type(c)}" for c in dataset.columns)
    ddl = f"CREATE TABLE IF NOT EXISTS {_quote(table)} (\n  {columns}\n)"
    if dataset.partitions:
        ddl += "\nPARTITIONED BY (" + ", ".join(f"{_quote(p.name)} {hive_type(p)}" for p in dataset.partitions) + ")"
    settings: dict[str, str] = {}
    if file_format == "PARQUET":
        if compression not in PARQUET_CODECS:
            raise ActionFailure(f"target_compression {compression} is not one Parquet offers (NONE, GZIP, SNAPPY)")
        ddl += "\nSTORED AS PARQUET"
        settings["spark.sql.parquet.compression.codec"] = PARQUET_CODECS[compression]
        return ddl, settings
    if file_format == "RCFILE":
        ddl += "\nSTORED AS RCFILE"
    elif row_format == "JSON":
        ddl += "\nROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\nSTORED AS TEXTFILE"
    else:
        delimiter = args.get("target_delimited_by") or dataset.delimited_by or ","
        ddl += f"\nROW FORMAT DELIMITED FIELDS TERMINATED BY {_literal(delimiter)}"
        # Without an escape, a value holding the delimiter would split into two columns when read back.
        escape = args.get("target_escaped_by") or fmt.get("escaped_by") or "\\"
        ddl += f" ESCAPED BY {_literal(escape)}"
        null_string = args.get("target_null_string") or fmt.get("null_string")
        if null_string:
            ddl += f"\nNULL DEFINED AS {_literal(null_string)}"
        ddl += "\nSTORED AS TEXTFILE"
    if compression != "NONE":
        settings.update({"hive.exec.compress.output": "true", "mapreduce.output.fileoutputformat.compress": "true",
                         "mapreduce.output.fileoutputformat.compress.codec": TEXT_CODECS[compression]})
    return ddl, settings


def spec(dataset: Dataset, files: Files, args: dict[str, Any], action_id: str) -> dict[str, Any]:
    """The load spec spark_load runs."""
    chosen = files_to_load(dataset, files) if files else []
    if not chosen:
        raise ActionFailure(f"no files to load for dataset {dataset.name}")
    suffix = EXTENSIONS.get(dataset.compression)
    if suffix and dataset.file_format != "PARQUET":
        odd = next((path for path, _ in chosen if not path.endswith(suffix)), None)
        if odd:
            raise ActionFailure(f"dataset {dataset.name} is {dataset.compression} but {odd} does not end in "
                                f"{suffix}: Hadoop picks a file's codec by its extension")
    table = args.get("target_table_name") or dataset.table_name
    reader, raw = source(dataset)
    expressions = [f"{cast(c, r)} AS {_quote(c.name)}" for c, r in zip(dataset.columns, raw, strict=True)]
    expressions += [f"{e} AS {_quote(p.name)}" for p, e in zip(dataset.partitions, partition_expressions(dataset),
                                                             strict=True)]
    ddl, settings = target(dataset, args, table)
    mode = {"RELOAD_ALL": "overwrite", "RELOAD_LAST": "overwrite", "MERGE": "merge"}.get(dataset.load_type, "append")
    return {"action_id": action_id, "table": table, "files": [path for path, _ in chosen],
            "bytes": sum(size for _, size in chosen), "source": reader, "select": expressions,
            "create_table": ddl, "settings": settings, "mode": mode,
            "merge_keys": list(dataset.upsert_keys), "stage_table": f"{table}_stage_for_action_{action_id}"}


def load_plan(root: str, dataset: Dataset, files: Files, args: dict[str, Any], action_id: str) -> Plan:
    """The Spark load (the important step) then the table's statistics (considered successful if it fails)."""
    found = spec(dataset, files, args, action_id)
    program = f"{root}/spark/dart_spark_load.py"
    spec_path = f"{root}/spark/load_{action_id}.json"
    table = found["table"]
    steps = [
        Step(f"spark load into {table} ({len(found['files'])} files)",
             ("spark-submit", "--deploy-mode", "cluster", program, spec_path)),
        Step(f"analyze table {table}", ("spark-sql", "-e", f"ANALYZE TABLE {_quote(table)} COMPUTE STATISTICS"),
             considered_successful=True),
    ]
    return Plan(action_id, steps, {program: Path(spark_load.__file__).read_bytes(),
                                   spec_path: json.dumps(found, indent=1).encode()})
