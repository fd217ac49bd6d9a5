"""The event entity's `data` schema (reference §3.10): an identifier external systems fire triggers by."""

from __future__ import annotations

from services.domain.schemas.fields import Schema, data_schema, name_field, nullable, tags_field

EVENT_STATES = ("ACTIVE", "INACTIVE")


def event_schema() -> Schema:
    return data_schema(
        {
            "name": name_field(),
            "description": nullable("string"),
            "state": {"type": "string", "enum": list(EVENT_STATES), "default": "INACTIVE"},
            "tags": tags_field(),
        },
        ["name"],
    )
