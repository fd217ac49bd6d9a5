"""The trigger entity's `data` schema (reference §3.9): its `args` follow its trigger type's params schema."""

from __future__ import annotations

from services.domain.schemas.fields import Schema, data_schema, embed, name_field, nullable, tags_field

TRIGGER_STATES = ("ACTIVE", "INACTIVE")


def trigger_type_schema() -> Schema:
    """A built-in trigger type as `GET /trigger_type` lists it."""
    return {
        "type": "object",
        "readonly": True,
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "params_json_schema": nullable("object"),
        },
        "additionalProperties": False,
    }


def trigger_schema(params_json_schema: Schema | None) -> Schema:
    """The trigger schema for one trigger type. With a params schema `args` is required and must satisfy it;
    without one `args` must be null."""
    schema = data_schema(
        {
            "name": name_field(),
            "trigger_type_name": {"type": "string", "readonly": True},
            # The workflows to run when this trigger fires; empty still counts as fired (for super triggers).
            "workflow_ids": {"type": "array", "default": [], "items": {"type": "string"}, "minItems": 0},
            "tags": tags_field(),
            "state": {"type": "string", "enum": list(TRIGGER_STATES), "default": "INACTIVE"},
            # Super ALL triggers keep the inputs seen so far here: {completed_trigger_id_times: {id: time}}.
            "extra_data": nullable("object", default=None, readonly=True),
            # Scheduled triggers an operator paused (POST /trigger/{id}/pause): no fire until unpaused (issue 15).
            "paused": nullable("boolean", default=None, readonly=True),
            "pause_note": nullable("string", default=None, readonly=True),
            # buffer_one: the last fire buffered per workflow id (waiting while its run has not started).
            "last_buffered": nullable("object", default=None, readonly=True),
        },
        ["name", "trigger_type_name"],
    )
    return embed(schema, "args", params_json_schema, when_absent={"type": "null"})
