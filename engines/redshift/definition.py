"""What the redshift_engine registers: the original's options and action types with their names, defaults and
params (reference §12.3), plus the options its dart config used to carry (subnet, security groups, IAM role)
and copy_to_s3's gzip and header from the postgresql engine, so a workflow moves between the two unchanged."""

from __future__ import annotations

import copy
from typing import Any

from engines.postgresql.definition import IDENTIFIER, SQL_SCRIPT, TOKENS_HELP, _range_params
from engines.postgresql.definition import SUPPORTED_ACTION_TYPES as POSTGRESQL_ACTION_TYPES
from engines.runner import ecs_task_definition

NAME = "redshift_engine"
NODE_TYPES = ["ds1.xlarge", "ds1.8xlarge", "ds2.xlarge", "ds2.8xlarge", "dc1.large", "dc1.8xlarge"]

OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "node_type": {
            "type": "string",
            "default": "ds2.xlarge",
            "enum": NODE_TYPES,
            "description": "the type of each node",
        },
        "nodes": {
            "type": "integer",
            "default": 2,
            "minimum": 2,
            "maximum": 50,
            "description": "the number of nodes in this cluster",
        },
        "master_user_name": {
            "type": ["string", "null"],
            "default": "admin",
            "minLength": 1,
            "maxLength": 128,
            "pattern": "^[a-zA-Z]+[a-zA-Z0-9]*$",
            "description": "the master user name for this redshift cluster",
        },
        "master_user_password": {
            "type": "string",
            "minLength": 8,
            "maxLength": 64,
            "pattern": "(?=.*\\d)(?=.*[a-z])(?=.*[A-Z])(?!.*['\"\\/@\\s])",
            "x-dart-secret": True,
            "description": "the master user password for this redshift cluster (hidden and ignored after "
            "initial "
            "save), see AWS docs for password requirements",
        },
        "master_db_name": {
            "type": ["string", "null"],
            "default": "dart",
            "minLength": 1,
            "maxLength": 64,
            "pattern": "^[a-z]+$",
            "description": "the master database name for this redshift cluster",
        },
        "cluster_identifier": {
            "type": ["string", "null"],
            "default": None,
            "minLength": 1,
            "maxLength": 63,
            "pattern": "^[a-zA-Z0-9-]*$",
            "description": "this overrides the auto-generated dart cluster_identifier",
        },
        "preferred_maintenance_window": {
            "type": "string",
            "default": "sat:03:30-sat:04:00",
            "description": "UTC time when automated cluster maintenance can occur",
        },
        "snapshot_retention": {
            "type": "integer",
            "default": 2,
            "minimum": 1,
            "maximum": 10,
            "description": "the maximum number of snapshots to keep, older ones will be deleted",
        },
        # What the original took from dart's config file for every cluster, per datastore here.
        "iam_role_arn": {
            "type": ["string", "null"],
            "default": None,
            "pattern": "^arn:aws[a-z-]*:iam::",
            "description": "the role COPY and UNLOAD assume (IAM_ROLE); without one they pass the "
            "engine's own AWS credentials (CREDENTIALS)",
        },
        "cluster_subnet_group_name": {"type": ["string", "null"], "default": None},
        "vpc_security_group_ids": {"type": "array", "default": [], "items": {"type": "string"}},
        "availability_zone": {"type": ["string", "null"], "default": None},
        "publicly_accessible": {"type": "boolean", "default": False},
    },
    "additionalProperties": False,
    # Required as in the original: a required secret is checked where it is given (issue 11).
    "required": ["master_user_password"],
}

_NO_PARAMS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
_TABLE_PARAMS: dict[str, Any] = {
    "target_schema_name": {
        "type": ["string", "null"],
        "default": "public",
        "pattern": IDENTIFIER,
        "description": "created if absent",
    },
    "target_table_name": {
        "type": ["string", "null"],
        "default": None,
        "pattern": IDENTIFIER,
        "description": "overrides dataset setting",
    },
    "target_sort_keys": {
        "type": "array",
        "default": [],
        "maxItems": 400,
        "description": "overrides dataset setting",
        "x-schema-form": {"type": "tabarray", "title": "{{ value || 'sort_key ' + $index }}"},
        "items": {"type": "string", "pattern": IDENTIFIER, "maxLength": 127},
    },
    "target_distribution_key": {
        "type": ["string", "null"],
        "default": None,
        "pattern": IDENTIFIER,
        "description": "overrides dataset setting",
    },
    "distribution_style": {
        "type": "string",
        "default": "EVEN",
        "enum": ["EVEN", "ALL"],
        "description": "ignored if dist_key is chosen",
    },
    "sort_keys_interleaved": {
        "type": ["boolean", "null"],
        "default": False,
        "description": "see AWS Redshift docs",
    },
    "truncate_columns": {"type": ["boolean", "null"], "default": True},
    "max_errors": {"type": ["integer", "null"], "default": 0, "minimum": 0},
    "batch_size": {"type": ["integer", "null"], "default": 0, "minimum": 0},
}
_SHARED = {a["name"]: a for a in POSTGRESQL_ACTION_TYPES}

SUPPORTED_ACTION_TYPES: list[dict[str, Any]] = [
    {
        "name": "start_datastore",
        "description": "create or restore this Redshift cluster",
        "params_json_schema": {
            "type": "object",
            "properties": {
                "snapshot_name": {
                    "type": ["string", "null"],
                    "default": None,
                    "description": "the cluster will be restored from this snapshot, or else the latest if "
                    "one exists (otherwise, a new cluster will be created)",
                }
            },
            "additionalProperties": False,
        },
    },
    {
        "name": "stop_datastore",
        "description": "Stops this Redshift cluster and creates a final snapshot",
        "params_json_schema": _NO_PARAMS,
    },
    _SHARED["execute_sql"],
    {
        "name": "load_dataset",
        "description": "Copies the dataset from s3 to the datastore",
        "params_json_schema": {
            "type": "object",
            "properties": {
                "dataset_id": {"type": "string", "description": "The id of the dataset to load"},
                **_range_params(),
                **_TABLE_PARAMS,
            },
            "additionalProperties": False,
            "required": ["dataset_id"],
        },
    },
    {
        "name": "consume_subscription",
        "description": "Consumes the next available dataset subscription elements",
        "params_json_schema": {
            "type": "object",
            "properties": {
                "subscription_id": {"type": "string", "description": "The id of the subscription to consume"},
                **_TABLE_PARAMS,
            },
            "additionalProperties": False,
            "required": ["subscription_id"],
        },
    },
    {
        "name": "copy_to_s3",
        "description": "exports the results of a sql statement to s3",
        "params_json_schema": {
            "type": "object",
            "properties": {
                "delimiter": {"type": ["string", "null"], "default": "\t", "description": "field delimiter"},
                "source_sql_statement": {
                    **SQL_SCRIPT,
                    "description": "the SQL SELECT statement to be executed",
                },
                "destination_s3_path": {
                    "type": "string",
                    "pattern": "^s3://.+$",
                    "description": "The destination s3 path, e.g. s3://bucket/prefix. " + TOKENS_HELP,
                },
                "parallel": {
                    "type": "boolean",
                    "default": True,
                    "description": "if false, unload sequentially as one file",
                },
                "gzip": {"type": ["boolean", "null"], "default": True},
                "header": {
                    "type": ["boolean", "null"],
                    "default": False,
                    "description": "a first line of column names",
                },
            },
            "additionalProperties": False,
            "required": ["source_sql_statement", "destination_s3_path"],
        },
    },
    {
        "name": "create_snapshot",
        "description": 'create a snapshot of this cluster in the form "dart-datastore-<id>-<YYYYmmddHHMMSS>"',
        "params_json_schema": _NO_PARAMS,
    },
    _SHARED["data_check"],
    {
        "name": "cluster_maintenance",
        "description": "Maintains data retention policies, Vacuum/Analyzes tables, and ensures advantageous "
        "encoding",
        "params_json_schema": {
            "type": "object",
            "properties": {
                "Retention_Policy": {
                    "type": "boolean",
                    "default": True,
                    "description": "If True, will use dart.retention_policy table to clean out data older "
                    "than the number of days listed",
                },
                "Vacuum": {
                    "type": "boolean",
                    "default": True,
                    "description": "If True, will run Vacuum post load. Recommended True",
                },
                "Analyze": {
                    "type": "boolean",
                    "default": True,
                    "description": "If True, will run Analyze post load. Recommended True",
                },
            },
            "additionalProperties": False,
            "required": ["Retention_Policy"],
        },
    },
]


def redshift_engine(**task_definition_settings: Any) -> dict[str, Any]:
    """A fresh registration body (``POST /engine`` data)."""
    return {
        "name": NAME,
        "description": "For Redshift clusters",
        "options_json_schema": copy.deepcopy(OPTIONS),
        "supported_action_types": copy.deepcopy(SUPPORTED_ACTION_TYPES),
        "ecs_task_definition": ecs_task_definition(NAME, "engine_redshift", **task_definition_settings),
        "tags": [],
    }
