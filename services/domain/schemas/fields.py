"""Field sub-schemas every entity shares (reference §2.2): name, tags, email lists, user_id, timestamps, the
envelope around `data`, and the embedding of an engine- or trigger-declared schema as a `data` property."""

from __future__ import annotations

import copy
from typing import Any

Schema = dict[str, Any]

NAME_PATTERN = r"^[a-zA-Z0-9_-]+$"
TAG_PATTERN = r"^[a-zA-Z0-9_]+$"
# ``\S`` spelled out: Python's ``\s`` also matches \x1c-\x1f and \x85, ECMAScript's (the OpenAPI document's
# regex dialect, which clients and schemathesis read) does not; with them named, both dialects agree.
EMAIL_PATTERN = r"^[^\s\x1c-\x1f\x85]+@[^\s\x1c-\x1f\x85]+$"
USER_ID_PATTERN = r"^[@.a-zA-Z0-9_-]+$"
S3_PATH_PATTERN = r"^s3://.+$"

# The server always overwrites user_id with the caller (reference §2.2); the default only matters for data
# validated outside a request, where "anonymous" is what the original wrote for an unknown caller.
ANONYMOUS = "anonymous"


def name_field() -> Schema:
    return {"type": "string", "pattern": NAME_PATTERN, "maxLength": 50}


def tags_field() -> Schema:
    return {
        "type": "array",
        "default": [],
        "items": {"type": "string", "pattern": TAG_PATTERN, "maxLength": 40},
        "minItems": 0,
    }


def email_list_field() -> Schema:
    return {
        "type": "array",
        "default": [],
        "items": {"type": "string", "pattern": EMAIL_PATTERN},
        "minItems": 0,
    }


def user_id_field() -> Schema:
    return {
        "type": "string",
        "pattern": USER_ID_PATTERN,
        "maxLength": 64,
        "default": ANONYMOUS,
        "readonly": True,
    }


def nullable(type_name: str, **extra: Any) -> Schema:
    """A field that may be null; `readonly=True` and the like pass through as UI hints."""
    return {"type": [type_name, "null"], **extra}


def timestamp_field() -> Schema:
    """A server-set ISO 8601 datetime (UTC with offset, design §6), null until the moment happens."""
    return {"type": ["string", "null"], "readonly": True}


def timedelta_field() -> Schema:
    """A duration as the original printed it: `H:MM:SS` or `N days, H:MM:SS`."""
    return {"type": ["string", "null"], "readonly": True}


def data_schema(properties: dict[str, Schema], required: list[str], **extra: Any) -> Schema:
    """An entity's `data` schema: closed (`additionalProperties: false`), with `user_id` added as the original's
    base_schema did, so every entity records who last wrote it."""
    props = dict(properties)
    props["user_id"] = user_id_field()
    return {
        "type": "object",
        **extra,
        "properties": props,
        "additionalProperties": False,
        "required": [*required, "user_id"],
    }


def envelope_schema(data: Schema) -> Schema:
    """The stored/returned entity around `data` (reference §2.2 base_schema): only these five keys."""
    return {
        "type": "object",
        "properties": {
            "id": {"type": ["string", "null"], "readonly": True},
            "version_id": {"type": ["integer", "null"], "readonly": True},
            "created": {"type": ["string", "null"], "readonly": True},
            "updated": {"type": ["string", "null"], "readonly": True},
            "data": data,
        },
        "additionalProperties": False,
        "required": ["data"],
    }


def embed(data: Schema, field: str, declared: Schema | None, when_absent: Schema) -> Schema:
    """Put a schema declared by an engine or trigger type under `data.properties[field]`, `args` for instance.

    The declared schema was written as a document of its own, so two things must follow it up to the root of
    the combined schema: its `$schema` (the validator is chosen at the root, and design §5 promises each
    declared schema its own draft; the entity keywords around it mean the same in every draft), and its
    `definitions` / `$defs`, so `"$ref": "#/definitions/x"` still resolves once the document is nested.
    """
    if declared is None:
        data["properties"][field] = when_absent
        return data
    declared = copy.deepcopy(declared)
    dialect = declared.get("$schema")
    if isinstance(dialect, str):
        data["$schema"] = dialect
    for key in ("definitions", "$defs"):
        if isinstance(declared.get(key), dict):
            data[key] = declared[key]
    data["properties"][field] = declared
    data["required"] = [*data["required"], field]
    return data
