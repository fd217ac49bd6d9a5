"""Redshift's statements, built from a dataset and an action's args: the target table (dist and sort keys),
``COPY ... FROM`` a manifest (format, compression, date formats, IAM role or credentials), MERGE through a
stage, ``UNLOAD``, and the tracking tables. Pure functions: tested as exact strings (no Redshift runs
here)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engines.data.datasets import Column, Dataset
from engines.data.readers import json_path
from engines.postgresql.hook import literal, quote

TRACKING_SCHEMA = "dart_tracking"
# The postgresql engine's tracking tables in Redshift's dialect (no partial index; SYSDATE).
TRACKING_DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {TRACKING_SCHEMA}",
    (
        f"CREATE TABLE IF NOT EXISTS {TRACKING_SCHEMA}.loads (action_id VARCHAR(64) NOT NULL, "
        "target VARCHAR(300) NOT NULL, load_type VARCHAR(16) NOT NULL, files INTEGER NOT NULL, "
        "rows BIGINT NOT NULL, skipped_rows INTEGER NOT NULL, "
        "loaded_at TIMESTAMP NOT NULL DEFAULT SYSDATE, PRIMARY KEY (action_id))"
    ),
    (
        f"CREATE TABLE IF NOT EXISTS {TRACKING_SCHEMA}.loaded_files (action_id VARCHAR(64) NOT NULL, "
        "s3_path VARCHAR(1024) NOT NULL, subscription_id VARCHAR(64), target VARCHAR(300) NOT NULL, "
        "rows BIGINT, "
        "loaded_at TIMESTAMP NOT NULL DEFAULT SYSDATE, PRIMARY KEY (action_id, s3_path))"
    ),
]
LOAD_ERROR_SQL = (
    "SELECT TRIM(filename), line_number, TRIM(colname), TRIM(raw_field_value), TRIM(err_reason) "
    "FROM stl_load_errors WHERE filename LIKE %s ORDER BY starttime DESC LIMIT 1"
)


@dataclass(frozen=True)
class Authorization:
    """How COPY and UNLOAD reach S3: the datastore's IAM role, else the engine's own (temporary)
    credentials."""

    iam_role: str | None = None
    access_key_id: str = ""
    secret_access_key: str = ""
    token: str | None = None

    def sql(self) -> str:
        if self.iam_role:
            return f"IAM_ROLE {literal(self.iam_role)}"
        token = f";token={self.token}" if self.token else ""
        return "CREDENTIALS " + literal(
            f"aws_access_key_id={self.access_key_id};aws_secret_access_key={self.secret_access_key}{token}"
        )


def column_type(column: Column) -> str:
    """Redshift's type: a VARCHAR without a length is VARCHAR(MAX) (Redshift's TEXT is only 256 bytes)."""
    if column.data_type in ("STRING", "VARCHAR"):
        return f"VARCHAR({column.length or 'MAX'})"
    if column.data_type == "NUMERIC":
        return "DECIMAL({},{})".format(*column.numeric)
    return column.sql_type()


def column_definition(column: Column) -> str:
    return f"{quote(column.name)} {column_type(column)}" + ("" if column.is_nullable else " NOT NULL")


def create_table_sql(target: str, dataset: Dataset, args: dict[str, Any]) -> str:
    """The target table as the original laid it out: the action's dist key (else the dataset's first), KEY
    style with one, else the action's style (EVEN); the action's sort keys (else the dataset's), interleaved
    if asked."""
    if dataset.partitions:
        raise ValueError(
            f"dataset {dataset.name} has partition columns: Redshift's COPY cannot take their values "
            "from the files' folders"
        )
    dist_key = args.get("target_distribution_key") or next(
        iter(dataset.extra.get("distribution_keys") or []), None
    )
    style = "KEY" if dist_key else (args.get("distribution_style") or "EVEN")
    sort_keys = args.get("target_sort_keys") or dataset.extra.get("sort_keys") or []
    body = [column_definition(c) for c in dataset.columns]
    if dataset.primary_keys:
        body.append(f"PRIMARY KEY ({', '.join(map(quote, dataset.primary_keys))})")
    sql = f"CREATE TABLE IF NOT EXISTS {target} ({', '.join(body)}) DISTSTYLE {style}"
    if dist_key:
        sql += f" DISTKEY ({quote(dist_key)})"
    if sort_keys:
        interleaved = "INTERLEAVED " if args.get("sort_keys_interleaved") else ""
        sql += f" {interleaved}SORTKEY ({', '.join(map(quote, sort_keys))})"
    return sql


def manifest(files: Sequence[tuple[str, int]]) -> str:
    """A COPY manifest: every file mandatory, with its size (Parquet needs it)."""
    return json.dumps(
        {
            "entries": [
                {"url": path, "mandatory": True, "meta": {"content_length": size}} for path, size in files
            ]
        }
    )


def jsonpaths(dataset: Dataset) -> str:
    """A JSONPaths file: each column's ``path`` (default its name) in bracket notation."""
    paths = [
        "$" + "".join(f"[{step}]" if isinstance(step, int) else f"['{step}']" for step in json_path(c))
        for c in dataset.columns
    ]
    return json.dumps({"jsonpaths": paths})


# Java/Hive date patterns (the dataset's spelling) to Redshift's; a pattern already in Redshift's is kept.
_REDSHIFT_TOKENS = {
    "yyyy": "YYYY",
    "yy": "YY",
    "MMM": "MON",
    "MM": "MM",
    "dd": "DD",
    "HH": "HH24",
    "hh": "HH12",
    "mm": "MI",
    "ss": "SS",
    "a": "AM",
    "%Y": "YYYY",
    "%y": "YY",
    "%b": "MON",
    "%m": "MM",
    "%d": "DD",
    "%H": "HH24",
    "%I": "HH12",
    "%M": "MI",
    "%S": "SS",
    "%p": "AM",
}
_TOKEN = re.compile("|".join(sorted(map(re.escape, _REDSHIFT_TOKENS), key=len, reverse=True)))


def redshift_format(pattern: str) -> str:
    if re.search(r"YYYY|HH24|HH12|MI", pattern):
        return pattern
    return _TOKEN.sub(lambda m: _REDSHIFT_TOKENS[m.group(0)], pattern.replace("'T'", "T"))


def _date_option(keyword: str, columns: list[Column]) -> str:
    patterns = sorted({c.date_pattern for c in columns if c.date_pattern})
    if len(patterns) > 1:
        raise ValueError(
            f"Redshift's COPY takes one {keyword}, but the columns' date_pattern differ: "
            + ", ".join(f"{c.name} {c.date_pattern!r}" for c in columns if c.date_pattern)
        )
    return f"{keyword} {literal(redshift_format(patterns[0]) if patterns else 'auto')}"


def copy_sql(
    table: str,
    dataset: Dataset,
    manifest_path: str,
    auth: Authorization,
    max_errors: int = 0,
    truncate_columns: bool = True,
    jsonpaths_path: str | None = None,
) -> str:
    """``COPY table FROM 's3://...manifest' ... MANIFEST``, the format, compression and date options the
    dataset says (one meaning for every engine: blank lines ignored, an empty field NULL unless null_string is
    given)."""
    parts = [f"COPY {table} FROM {literal(manifest_path)}", auth.sql(), "MANIFEST"]
    if dataset.file_format == "PARQUET":
        if max_errors:
            raise ValueError("max_errors: Redshift's COPY cannot skip bad rows of PARQUET files")
        return " ".join(parts + ["FORMAT AS PARQUET"])
    if dataset.row_format == "JSON":
        if not jsonpaths_path:
            raise ValueError("a JSON dataset needs its JSONPaths file")
        parts.append(f"FORMAT AS JSON {literal(jsonpaths_path)}")
    elif dataset.row_format in ("DELIMITED", "NONE"):
        parts += _delimited(dataset)
    else:
        raise ValueError(f"Redshift's COPY cannot read {dataset.file_format} {dataset.row_format} files")
    if dataset.compression in ("GZIP", "BZ2"):
        parts.append("GZIP" if dataset.compression == "GZIP" else "BZIP2")
    elif dataset.compression != "NONE":
        raise ValueError(f"Redshift's COPY cannot decompress {dataset.compression} text files")
    if truncate_columns:
        parts.append("TRUNCATECOLUMNS")
    parts.append(f"MAXERROR {int(max_errors)}")
    parts.append(_date_option("DATEFORMAT", [c for c in dataset.columns if c.data_type == "DATE"]))
    parts.append(
        _date_option("TIMEFORMAT", [c for c in dataset.columns if c.data_type in ("DATETIME", "TIMESTAMP")])
    )
    return " ".join(parts)


def _delimited(dataset: Dataset) -> list[str]:
    delimiter = literal(dataset.delimited_by or ",")  # the shared readers' default, not Redshift's pipe
    escape = dataset.escaped_by
    if escape and escape != "\\" and escape != dataset.quoted_by:
        raise ValueError(f"Redshift's COPY escapes only with a backslash, not {escape!r}")
    if dataset.quoted_by and escape != "\\":
        options = [f"CSV QUOTE AS {literal(dataset.quoted_by)}", f"DELIMITER {delimiter}"]  # "" inside quotes
    else:
        options = (
            [f"DELIMITER {delimiter}"]
            + (["REMOVEQUOTES"] if dataset.quoted_by else [])
            + (["ESCAPE"] if escape == "\\" else [])
        )
    options.append(
        f"NULL AS {literal(dataset.null_string)}" if dataset.null_string is not None else "EMPTYASNULL"
    )
    if dataset.num_header_rows:
        options.append(f"IGNOREHEADER {dataset.num_header_rows}")
    options.append("IGNOREBLANKLINES")
    return options


def merge_sql(target: str, stage: str, dataset: Dataset) -> list[str]:
    """Upsert the stage into the target on merge_keys (else primary_keys): the target's matching rows go, then
    one row per key comes from the stage, the first by batch_merge_sort_keys; the stage is emptied for the
    next round (DELETE: Redshift's TRUNCATE would commit the load)."""
    keys = [quote(k) for k in dataset.upsert_keys]
    columns = ", ".join(quote(c.name) for c in dataset.columns)
    order = [quote(k.split()[0]) + " " + k.split()[1] for k in dataset.batch_merge_sort_keys] or keys
    return [
        f"DELETE FROM {target} USING {stage} WHERE "
        + " AND ".join(f"{target}.{k} = {stage}.{k}" for k in keys),
        (
            f"INSERT INTO {target} ({columns}) SELECT {columns} FROM (SELECT {columns}, ROW_NUMBER() OVER "
            f"(PARTITION BY {', '.join(keys)} ORDER BY {', '.join(order)}) AS _dart_rank FROM {stage}) "
            "AS ranked WHERE _dart_rank = 1"
        ),
        f"DELETE FROM {stage}",
    ]


def unload_sql(
    statement: str,
    destination: str,
    auth: Authorization,
    delimiter: str | None = None,
    parallel: bool = True,
    gzip: bool = True,
    header: bool = False,
) -> str:
    """The original's UNLOAD (NULL AS 'NULL', ESCAPE, ALLOWOVERWRITE, so a re-run overwrites the same
    keys)."""
    query = statement.strip().rstrip(";")
    return " ".join(
        [
            f"UNLOAD ({literal(query)}) TO {literal(destination)}",
            auth.sql(),
            "ALLOWOVERWRITE",
            "NULL AS 'NULL'",
            "ESCAPE",
            f"DELIMITER {literal(delimiter or chr(9))}",
        ]
        + (["HEADER"] if header else [])
        + [f"PARALLEL {'ON' if parallel else 'OFF'}"]
        + (["GZIP"] if gzip else [])
    )
