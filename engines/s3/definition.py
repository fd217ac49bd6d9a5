"""What the s3_engine registers (reference §12.4): the original's names, params and defaults, with its schema
bug fixed (``copy`` had ``required`` and ``additionalProperties`` inside ``properties``, so nothing was
required and anything was allowed)."""

from __future__ import annotations

import copy
from typing import Any

from engines.runner import ecs_task_definition

NAME = "s3_engine"
TOKENS_HELP = ("The following values (with braces) will be substituted with the appropriate zero-padded values "
               "at runtime: {YEAR}, {MONTH}, {DAY}, {HOUR}, {MINUTE}, {SECOND}")

COPY_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "from_path": {"type": "string", "pattern": "^s3://.+$",
                      "description": "The source s3 file path. " + TOKENS_HELP},
        "to_path": {"type": "string", "pattern": "^s3://.+$",
                    "description": "The destination s3 file path. " + TOKENS_HELP},
        "recursive": {"type": ["boolean", "null"], "default": True,
                      "description": "Performs recursive copy of source to destination"},
    },
    "additionalProperties": False,
    "required": ["from_path", "to_path"],
}

DATA_CHECK_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "s3_path_prefix": {
            "type": "string", "pattern": "^s3://.+$",
            "description": "The s3 path prefix where at least one s3 key/file should exist, e.g. "
                           "s3://bucket/prefix. " + TOKENS_HELP,
        },
        "s3_path_regex": {"type": ["string", "null"], "default": None,
                          "description": "A regex pattern the s3 path must match (from its start, as "
                                         "re.match). " + TOKENS_HELP},
        "min_file_size_in_bytes": {
            "type": ["integer", "null"], "default": 0, "minimum": 0,
            "description": "If specified, at least one file matching the provided regex must be at least this size",
        },
        "date_offset_in_seconds": {
            "type": ["integer", "null"], "default": 0,
            "description": "If specified, the date used in s3 path substitutions will be adjusted by this amount",
        },
        "s3_file_last_modified": {
            "type": ["boolean", "null"], "default": False,
            "description": "If specified, only files modified since now plus date_offset_in_seconds count",
        },
    },
    "additionalProperties": False,
    "required": ["s3_path_prefix"],
}

SUPPORTED_ACTION_TYPES: list[dict[str, Any]] = [
    {"name": "copy", "description": "Accomplishes s3 source to s3 destination copy, giving the destination "
                                    "bucket owner full control", "params_json_schema": COPY_PARAMS},
    {"name": "data_check", "description": "A data check that passes if an s3 key/file exists that matches the "
                                          "specified requirements", "params_json_schema": DATA_CHECK_PARAMS},
]


def s3_engine(**task_definition_settings: Any) -> dict[str, Any]:
    """A fresh registration body (``POST /engine`` data)."""
    return {
        "name": NAME,
        "description": "For S3 operations",
        "options_json_schema": {"type": "object", "properties": {}, "additionalProperties": False},
        "supported_action_types": copy.deepcopy(SUPPORTED_ACTION_TYPES),
        "ecs_task_definition": ecs_task_definition(NAME, "engine_s3", **task_definition_settings),
        "tags": [],
    }
