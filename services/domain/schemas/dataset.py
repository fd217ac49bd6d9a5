"""The dataset entity's `data` schema with its DataFormat and Column parts (reference §3.2)."""

from __future__ import annotations

from services.domain.schemas.fields import (
    S3_PATH_PATTERN,
    Schema,
    data_schema,
    name_field,
    nullable,
    tags_field,
)

LOAD_TYPES = ("INSERT", "MERGE", "RELOAD_ALL", "RELOAD_LAST")
FILE_FORMATS = ("TEXTFILE", "RCFILE", "PARQUET")
ROW_FORMATS = ("NONE", "DELIMITED", "JSON", "REGEX")
COMPRESSIONS = ("NONE", "BZ2", "GZIP", "SNAPPY")
DATA_TYPES = (
    "STRING",
    "VARCHAR",
    "BIGINT",
    "INT",
    "SMALLINT",
    "DOUBLE",
    "FLOAT",
    "NUMERIC",
    "BOOLEAN",
    "DATE",
    "DATETIME",
    "TIMESTAMP",
)
IDENTIFIER_PATTERN = r"^[a-zA-Z0-9_]+$"


def column_schema() -> Schema:
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": IDENTIFIER_PATTERN, "maxLength": 255},
            "data_type": {"type": "string", "enum": list(DATA_TYPES)},
            "length": nullable("integer", minimum=1),
            "precision": nullable("integer"),
            "scale": nullable("integer"),
            "path": nullable("string", description="the JSON path of the value, for row_format JSON"),
            "date_pattern": nullable("string"),
            "description": nullable("string"),
            "is_nullable": nullable("boolean", default=True),
        },
        "additionalProperties": False,
        "required": ["name", "data_type"],
    }


def columns_schema(min_items: int, allow_null: bool) -> Schema:
    return {
        "type": ["array", "null"] if allow_null else "array",
        "items": column_schema(),
        "minItems": min_items,
    }


def data_format_schema() -> Schema:
    return {
        "type": "object",
        "properties": {
            "file_format": {"type": "string", "enum": list(FILE_FORMATS)},
            "row_format": {"type": "string", "enum": list(ROW_FORMATS)},
            "num_header_rows": {"type": "integer", "default": 0, "minimum": 0},
            "delimited_by": nullable("string", default=None),
            "quoted_by": nullable("string", default=None),
            "escaped_by": nullable("string", default=None),
            "null_string": nullable("string", default=None),
            "regex_input": nullable("string", default=None),
            "regex_output": nullable("string", default=None),
        },
        "additionalProperties": False,
        "required": ["file_format", "row_format"],
    }


def _key_list(item_pattern: str = IDENTIFIER_PATTERN) -> Schema:
    return {
        "type": "array",
        "default": [],
        "items": {"type": "string", "pattern": item_pattern, "maxLength": 127},
    }


def dataset_schema() -> Schema:
    return data_schema(
        {
            "name": name_field(),
            "table_name": {"type": "string", "pattern": IDENTIFIER_PATTERN, "minLength": 1},
            # The service strips a trailing "/" before validating (reference §3.2).
            "location": {"type": "string", "pattern": S3_PATH_PATTERN},
            "load_type": {"type": "string", "enum": list(LOAD_TYPES)},
            "data_format": data_format_schema(),
            "columns": columns_schema(1, allow_null=False),
            "primary_keys": _key_list(),
            "merge_keys": _key_list(),
            "sort_keys": _key_list(),
            "distribution_keys": _key_list(),
            "batch_merge_sort_keys": _key_list(r"^[a-zA-Z0-9_]+ (ASC|DESC)$"),
            "tags": tags_field(),
            # The original's model defaulted to NONE; its schema only required it. Defaulting here gives the
            # model's behaviour to clients that send JSON without the field.
            "compression": {"type": "string", "enum": list(COMPRESSIONS), "default": "NONE"},
            "partitions": columns_schema(0, allow_null=True),
            "hive_compatible_partition_folders": nullable("boolean", default=False),
            "description": nullable("string", default=None),
        },
        ["name", "table_name", "location", "load_type", "data_format", "columns", "compression"],
    )
