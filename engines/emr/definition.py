"""What the emr_engine registers: the original's options and action types with their names and params
(reference §12.2), plus what its dart config used to carry per environment (roles, subnet, node limit, Impala
install, tags), per datastore here. Two defaults move on: the original's emr-4.2.0 and m3.2xlarge cannot be
launched on today's EMR (m3 is not offered from EMR 6, Spark 3 needs EMR 6), and ``instance_type`` is no longer
read-only."""

from __future__ import annotations

import copy
from typing import Any

from engines.postgresql.definition import IDENTIFIER, _range_params
from engines.runner import ecs_task_definition

NAME = "emr_engine"
FILE_FORMATS = ["TEXTFILE", "RCFILE", "PARQUET"]
ROW_FORMATS = ["NONE", "DELIMITED", "JSON", "REGEX"]
COMPRESSIONS = ["NONE", "BZ2", "GZIP", "SNAPPY"]
DEFAULT_RELEASE_LABEL = "emr-7.5.0"
DEFAULT_INSTANCE_TYPE = "m5.2xlarge"

OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        # The original's pattern left its dots unescaped and allowed one digit per part, refusing emr-6.15.0.
        "release_label": {"type": "string", "pattern": "^emr-[0-9]+\\.[0-9]+\\.[0-9]+$",
                          "default": DEFAULT_RELEASE_LABEL, "description": "desired EMR release label"},
        "instance_type": {"type": ["string", "null"], "default": DEFAULT_INSTANCE_TYPE,
                          "description": "The ec2 instance type of master/core nodes"},
        "instance_count": {"type": ["integer", "null"], "default": None, "minimum": 1, "maximum": 50,
                           "description": "The total number of nodes in this cluster (overrides "
                                          "data_to_freespace_ratio)"},
        "data_to_freespace_ratio": {"type": ["number", "null"], "default": 0.5, "minimum": 0.0, "maximum": 1.0,
                                    "description": "Desired ratio of HDFS data/free-space"},
        "dry_run": {"type": ["boolean", "null"], "default": False,
                    "description": "write extra_data to actions, but do not actually run"},
        "ec2_keyname": {"type": ["string", "null"], "default": None,
                        "description": "The name of the ec2_key_pair for the emr cluster"},
        # The original's engine config (`engines.emr_engine.options`), per datastore. Its Impala install
        # (a private docker repository) is not carried over: EMR releases do not ship Impala, so a cluster that
        # runs run_impala_script installs it with start_datastore's bootstrap_script.
        "instance_profile": {"type": "string", "default": "EMR_EC2_DefaultRole",
                             "description": "the EC2 instance profile of the cluster's nodes (JobFlowRole)"},
        "service_role": {"type": "string", "default": "EMR_DefaultRole", "description": "the EMR service role"},
        "subnet_id": {"type": ["string", "null"], "default": None},
        "core_node_limit": {"type": "integer", "default": 30, "minimum": 1, "maximum": 49,
                            "description": "the most core nodes sizing by data_to_freespace_ratio may ask for"},
        "cluster_tags": {"type": "object", "default": {}, "additionalProperties": {"type": "string"},
                         "description": "tags put on the cluster"},
    },
    "additionalProperties": False,
    "required": ["release_label"],
}

_SCRIPT = {"type": "string", "x-schema-form": {"type": "textarea"}}
_OVERRIDES = "overrides dataset setting"


def _targets(file_format: str, row_format: str, compression: str) -> dict[str, Any]:
    return {
        "target_table_name": {"type": ["string", "null"], "default": None, "pattern": IDENTIFIER,
                              "description": _OVERRIDES},
        "target_file_format": {"type": ["string", "null"], "enum": FILE_FORMATS + [None], "default": file_format,
                               "description": _OVERRIDES},
        "target_row_format": {"type": ["string", "null"], "enum": ROW_FORMATS + [None], "default": row_format,
                              "description": _OVERRIDES},
        "target_compression": {"type": ["string", "null"], "enum": COMPRESSIONS + [None], "default": compression,
                               "description": _OVERRIDES},
        **{name: {"type": ["string", "null"], "default": None, "description": _OVERRIDES}
           for name in ("target_delimited_by", "target_quoted_by", "target_escaped_by", "target_null_string")},
    }


def _script_action(name: str, what: str) -> dict[str, Any]:
    return {"name": f"run_{name}_script", "description": f"Run the provided {what} script on the EMR cluster",
            "params_json_schema": {"type": "object", "properties": {
                "script_contents": {**_SCRIPT, "description": f"The contents of the {what} script to execute"}},
                "additionalProperties": False, "required": ["script_contents"]}}


SUPPORTED_ACTION_TYPES: list[dict[str, Any]] = [
    {"name": "start_datastore", "description": "Start this datastore for the first time",
     "params_json_schema": {"type": "object", "properties": {
         "bootstrap_script": {"type": ["string", "null"], "x-schema-form": {"type": "textarea"},
                              "description": "The contents of this script will be executed as a bootstrap step"},
         "configuration_overrides": {"type": ["string", "null"], "x-schema-form": {"type": "textarea"},
                                     "description": "Optional configuration overrides as a JSON array of Amazon "
                                                    "EMR Configuration objects"},
     }, "additionalProperties": False, "required": []}},
    {"name": "terminate_datastore", "description": "Permanently destroy this datastore",
     "params_json_schema": None},
    {"name": "load_dataset", "description": "Copies the dataset from s3 to the datastore",
     "params_json_schema": {"type": "object", "properties": {
         "dataset_id": {"type": "string", "description": "The id of the dataset to load"},
         **_range_params(), **_targets("PARQUET", "NONE", "SNAPPY")},
         "additionalProperties": False, "required": ["dataset_id"]}},
    {"name": "consume_subscription", "description": "Consumes the next available dataset subscription elements",
     "params_json_schema": {"type": "object", "properties": {
         "subscription_id": {"type": "string", "description": "The id of the subscription to consume"},
         **_targets("TEXTFILE", "DELIMITED", "GZIP")},
         "additionalProperties": False, "required": ["subscription_id"]}},
    _script_action("hive", "hive"),
    _script_action("impala", "impala"),
    _script_action("pyspark", "pyspark"),
    {"name": "copy_hdfs_to_s3", "description": "Copies data at the specified hdfs path to s3",
     "params_json_schema": {"type": "object", "properties": {
         "source_hdfs_path": {"type": "string", "pattern": "^hdfs://.+$",
                              "description": "The source hdfs path, e.g. hdfs:///user/hive/warehouse/table"},
         "destination_s3_path": {"type": "string", "pattern": "^s3://.+$",
                                 "description": "The destination s3 path, e.g. s3://bucket/prefix"},
     }, "additionalProperties": False, "required": ["source_hdfs_path", "destination_s3_path"]}},
]


def emr_engine(**task_definition_settings: Any) -> dict[str, Any]:
    """A fresh registration body (``POST /engine`` data)."""
    return {
        "name": NAME,
        "description": "For EMR clusters that use Hive, Impala, Spark, etc.",
        "options_json_schema": copy.deepcopy(OPTIONS),
        "supported_action_types": copy.deepcopy(SUPPORTED_ACTION_TYPES),
        "ecs_task_definition": ecs_task_definition(NAME, "engine_emr", **task_definition_settings),
        "tags": [],
    }
