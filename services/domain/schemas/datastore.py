"""The datastore entity's `data` schema (reference §3.3): its `args` follow the engine's options schema."""

from __future__ import annotations

from services.domain.schemas.fields import Schema, data_schema, embed, name_field, nullable, tags_field

DATASTORE_STATES = ("INACTIVE", "ACTIVE", "DONE", "TEMPLATE")


def datastore_schema(options_json_schema: Schema | None) -> Schema:
    """The datastore schema for an engine. `args` must satisfy the engine's options schema (and is then
    required); an engine without one takes no args, so `args` must be null."""
    schema = data_schema(
        {
            "name": name_field(),
            "engine_name": {"type": "string", "pattern": r"^[a-zA-Z0-9_]+$", "readonly": True},
            "workflow_datastore_id": nullable("string", default=None, readonly=True),
            # Clones of a TEMPLATE record the run they were made for (reference §3.3, §17.9).
            "workflow_id": nullable("string", readonly=True),
            "workflow_instance_id": nullable("string", readonly=True),
            "host": nullable("string", default=None, readonly=True),
            "port": nullable("integer", default=None, readonly=True),
            "connection_url": nullable("string", default=None, readonly=True),
            "s3_artifacts_path": nullable("string", default=None, readonly=True),
            "s3_logs_path": nullable("string", default=None, readonly=True),
            "tags": tags_field(),
            "state": {"type": "string", "enum": list(DATASTORE_STATES), "default": "INACTIVE"},
            # How many of this datastore's actions may be PENDING, RUNNING or FINISHING at once.
            "concurrency": {"type": "integer", "default": 1, "minimum": 1, "maximum": 10},
            "extra_data": nullable("object", default=None, readonly=True),
            # Run control (issue 15): the default timeout of its actions, and how long an action may stay
            # PENDING (launched, not yet checked out) before it is failed.
            "action_timeout_seconds": nullable("integer", minimum=1),
            "launch_timeout_seconds": nullable("integer", minimum=1),
        },
        ["name", "engine_name"],
    )
    return embed(schema, "args", options_json_schema, when_absent={"type": "null"})
