"""What the dynamodb_engine registers (reference §12.5): the original's options and action types, names and
defaults; load_dataset's range params are the postgresql engine's (the same tokens and offsets)."""

from __future__ import annotations

import copy
from typing import Any

from engines.postgresql.definition import SUPPORTED_ACTION_TYPES as POSTGRESQL_ACTION_TYPES
from engines.runner import ecs_task_definition

NAME = "dynamodb_engine"
IDENTIFIER = "^[a-zA-Z0-9_]+$"

OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "dataset_id": {"type": "string", "description": "The id of the dataset on which the table is based"},
        "target_table_name": {"type": ["string", "null"], "default": None, "pattern": IDENTIFIER,
                              "description": "overrides dataset setting (default: the dataset's table_name)"},
        "target_distribution_key": {"type": ["string", "null"], "default": None, "pattern": IDENTIFIER,
                                    "description": "the hash key column (default: the dataset's first "
                                                   "distribution key, else its first primary key)"},
        "target_sort_key": {"type": ["string", "null"], "default": None, "pattern": IDENTIFIER,
                            "description": "the range key column (default: the dataset's first sort key, if "
                                           "any)"},
    },
    "additionalProperties": False,
    "required": ["dataset_id"],
}


def _range_params() -> dict[str, Any]:
    """The s3 range and regex, with their tokens and date offsets, exactly as the SQL engines take them."""
    load = next(t for t in POSTGRESQL_ACTION_TYPES if t["name"] == "load_dataset")
    return {k: v for k, v in load["params_json_schema"]["properties"].items() if k.startswith("s3_path_")}


CAPACITY = {"type": ["integer", "null"], "minimum": 1}

SUPPORTED_ACTION_TYPES: list[dict[str, Any]] = [
    {"name": "create_table",
     "description": "creates a new DynamoDB table, where the hash key, sort key, attributes, and their types are "
                    "inferred from datastore's dataset",
     "params_json_schema": {"type": "object", "properties": {
         "read_capacity_units": {**CAPACITY, "default": 25, "description": "the initial read throughput"},
         "write_capacity_units": {**CAPACITY, "default": 25, "description": "the initial write throughput"},
     }, "additionalProperties": False, "required": ["read_capacity_units", "write_capacity_units"]}},
    {"name": "delete_table", "description": "deletes a DynamoDB table", "params_json_schema": None},
    {"name": "load_dataset",
     "description": "loads the data from this datastore's dataset: every row of the range's files written as an "
                    "item (an item of the same key is overwritten, so a re-run writes the same items)",
     "params_json_schema": {"type": "object", "properties": {
         **_range_params(),
         "initial_write_capacity_units": {**CAPACITY, "description": "the table's write capacity during the "
                                          "load; leave blank to avoid changing this value"},
         "final_write_capacity_units": {**CAPACITY, "description": "the table's write capacity after the load "
                                        "(default: what it was before, when initial_write_capacity_units "
                                        "changed it); leave blank to avoid changing this value"},
         "write_capacity_utilization_percent": {
             "type": ["number", "null"], "default": 0.5, "minimum": 0.1, "maximum": 1.5,
             "description": "the percentage of write capacity units to utilize, as a fraction (0.5 is "
                            "half; above 1 spends the table's burst capacity)"},
     }, "additionalProperties": False, "required": []}},
]


def dynamodb_engine(**task_definition_settings: Any) -> dict[str, Any]:
    """A fresh registration body (``POST /engine`` data)."""
    return {
        "name": NAME,
        "description": "For DynamoDB tables",
        "options_json_schema": copy.deepcopy(OPTIONS),
        "supported_action_types": copy.deepcopy(SUPPORTED_ACTION_TYPES),
        "ecs_task_definition": ecs_task_definition(NAME, "engine_dynamodb", **task_definition_settings),
        "tags": [],
    }
