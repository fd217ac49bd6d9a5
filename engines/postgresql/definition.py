"""What the postgresql_engine registers: its options (the password is an ``x-dart-secret``) and action types with
the redshift engine's params where they apply, so a workflow moves between the two unchanged."""

from __future__ import annotations

import copy
from typing import Any

from engines.runner import ecs_task_definition

NAME = "postgresql_engine"
TOKENS_HELP = ("The following values (with braces) will be substituted with the appropriate zero-padded values "
               "at runtime: {YEAR}, {MONTH}, {DAY}, {HOUR}, {MINUTE}, {SECOND}")
IDENTIFIER = "^[a-zA-Z0-9_]+$"

OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "host": {"type": ["string", "null"], "default": None,
                 "description": "the server (else the datastore's host field)"},
        "port": {"type": "integer", "default": 5432, "minimum": 1, "maximum": 65535},
        "database": {"type": "string", "default": "postgres"},
        "user": {"type": "string", "default": "postgres"},
        "password": {"type": "string", "x-dart-secret": True, "description": "the user's password"},
        "sslmode": {"type": "string", "default": "prefer",
                    "enum": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]},
        "schema": {"type": "string", "default": "public", "pattern": IDENTIFIER,
                   "description": "first on the search path, and the default target schema of loads"},
    },
    "additionalProperties": False,
    # A required secret is checked where it is given (issue 11): a datastore without a password is a 400 at
    # save time, not a refused connection at run time.
    "required": ["password"],
}

SQL_SCRIPT = {"type": "string", "x-schema-form": {"type": "textarea"}, "description": "The SQL script to be executed"}


def _range_params() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, what in (("s3_path_start_prefix_inclusive", "The inclusive s3 path start prefix."),
                       ("s3_path_end_prefix_exclusive", "The exclusive s3 path end prefix."),
                       ("s3_path_regex_filter", "A regex pattern the s3 path must match.")):
        found[f"{name}_date_offset_in_seconds"] = {
            "type": ["integer", "null"], "default": 0,
            "description": "If specified, the date used in s3 path substitutions will be adjusted by this amount"}
        found[name] = {"type": ["string", "null"], "default": None, "description": f"{what} {TOKENS_HELP}"}
        if name != "s3_path_regex_filter":
            found[name]["pattern"] = "^s3://.+$"
    return found


TARGET_PARAMS: dict[str, Any] = {
    "target_schema_name": {"type": ["string", "null"], "default": None, "pattern": IDENTIFIER,
                           "description": "created if absent (default: the datastore's schema)"},
    "target_table_name": {"type": ["string", "null"], "default": None, "pattern": IDENTIFIER,
                          "description": "overrides dataset setting"},
    "truncate_columns": {"type": ["boolean", "null"], "default": True,
                         "description": "cut text longer than a VARCHAR column's length instead of failing"},
    "max_errors": {"type": ["integer", "null"], "default": 0, "minimum": 0,
                   "description": "bad rows skipped (each reported) before the load fails"},
    "batch_size": {"type": ["integer", "null"], "default": 0, "minimum": 0,
                   "description": "MERGE: files staged per upsert round (0: all in one round)"},
}

SUPPORTED_ACTION_TYPES: list[dict[str, Any]] = [
    {"name": "execute_sql", "description": "Executes a user defined SQL script",
     "params_json_schema": {"type": "object", "properties": {"sql_script": SQL_SCRIPT},
                            "additionalProperties": False, "required": ["sql_script"]}},
    {"name": "data_check", "description": "Executes a user defined, SQL data check",
     "params_json_schema": {"type": "object", "properties": {"sql_script": {
         **SQL_SCRIPT, "description": 'this SQL should return one row that is true (for "passed") or false '
                                      '(for "failed")'}},
         "additionalProperties": False, "required": ["sql_script"]}},
    {"name": "load_dataset", "description": "Copies the dataset from s3 to the datastore",
     "params_json_schema": {"type": "object", "properties": {
         "dataset_id": {"type": "string", "description": "The id of the dataset to load"},
         **_range_params(), **TARGET_PARAMS}, "additionalProperties": False, "required": ["dataset_id"]}},
    {"name": "consume_subscription", "description": "Consumes the next available dataset subscription elements",
     "params_json_schema": {"type": "object", "properties": {
         "subscription_id": {"type": "string", "description": "The id of the subscription to consume"},
         **TARGET_PARAMS}, "additionalProperties": False, "required": ["subscription_id"]}},
    {"name": "copy_to_s3", "description": "exports the results of a sql statement to s3",
     "params_json_schema": {"type": "object", "properties": {
         "source_sql_statement": {**SQL_SCRIPT, "description": "the SQL SELECT statement to be executed"},
         "destination_s3_path": {"type": "string", "pattern": "^s3://.+$",
                                 "description": "The destination prefix, e.g. s3://bucket/prefix/part_: the "
                                                "object written is <prefix>000 (.gz when gzip). " + TOKENS_HELP},
         "delimiter": {"type": ["string", "null"], "default": "\t", "minLength": 1, "maxLength": 1,
                       "description": "field delimiter"},
         "gzip": {"type": ["boolean", "null"], "default": True},
         "header": {"type": ["boolean", "null"], "default": False, "description": "a first line of column names"},
     }, "additionalProperties": False, "required": ["source_sql_statement", "destination_s3_path"]}},
]


def postgresql_engine(**task_definition_settings: Any) -> dict[str, Any]:
    """A fresh registration body (``POST /engine`` data)."""
    return {
        "name": NAME,
        "description": "For PostgreSQL databases (RDS, Aurora, any server)",
        "options_json_schema": copy.deepcopy(OPTIONS),
        "supported_action_types": copy.deepcopy(SUPPORTED_ACTION_TYPES),
        "ecs_task_definition": ecs_task_definition(NAME, "engine_postgresql", **task_definition_settings),
        "tags": [],
    }
