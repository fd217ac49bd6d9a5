"""What the duckdb_engine registers: the database file's options, and the postgresql engine's action types
(the redshift engine's params where they apply), copy_to_s3 also writing Parquet."""

from __future__ import annotations

import copy
from typing import Any

from engines.postgresql.definition import SUPPORTED_ACTION_TYPES as POSTGRESQL_ACTION_TYPES
from engines.runner import ecs_task_definition

NAME = "duckdb_engine"

OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {
            "type": ["string", "null"],
            "default": None,
            "minLength": 1,
            "description": "the database file (created if absent); a relative path is under the engine's "
            "data folder, $DART_HOME/engines/duckdb (default: <datastore id>.duckdb there)",
        },
        "lock_timeout_seconds": {
            "type": ["number", "null"],
            "default": 600,
            "minimum": 0,
            "description": "how long an action waits for another process to let go of the "
            "file (DuckDB allows one process at a time)",
        },
    },
    "additionalProperties": False,
}


def _action_types() -> list[dict[str, Any]]:
    found = copy.deepcopy(POSTGRESQL_ACTION_TYPES)
    for action_type in found:
        properties = action_type["params_json_schema"]["properties"]
        if "target_schema_name" in properties:
            properties["target_schema_name"]["description"] = "created if absent (default: main)"
        if action_type["name"] == "copy_to_s3":
            properties["file_format"] = {
                "type": ["string", "null"],
                "default": "CSV",
                "enum": ["CSV", "PARQUET", None],
                "description": "CSV (delimiter, header and gzip apply; <prefix>000[.gz]) or PARQUET (SNAPPY "
                "inside "
                "the file; <prefix>000.parquet)",
            }
    return found


SUPPORTED_ACTION_TYPES = _action_types()


def duckdb_engine(**task_definition_settings: Any) -> dict[str, Any]:
    """A fresh registration body (``POST /engine`` data)."""
    return {
        "name": NAME,
        "description": "The embedded local data mart: a DuckDB file on the machine that runs the engine",
        "options_json_schema": copy.deepcopy(OPTIONS),
        "supported_action_types": copy.deepcopy(SUPPORTED_ACTION_TYPES),
        "ecs_task_definition": ecs_task_definition(NAME, "engine_duckdb", **task_definition_settings),
        "tags": [],
    }
