"""The engine entity's `data` schema and its ActionType items (reference §3.1), and the check of the schemas
an engine declares for its datastores' `args` and its actions' `args` (design §5)."""

from __future__ import annotations

from typing import Any

from services.domain.schemas.fields import Schema, data_schema, name_field, nullable, tags_field
from services.domain.schemas.validate import SchemaValidationError, check_schema


def action_type_schema() -> Schema:
    """One of an engine's supported action types; a null params schema means the action takes no args."""
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "description": nullable("string"),
            "params_json_schema": nullable("object"),
        },
        "additionalProperties": False,
        "required": ["name"],
    }


def engine_schema() -> Schema:
    return data_schema(
        {
            "name": name_field(),
            "description": nullable("string"),
            "options_json_schema": nullable(
                "object", description="the JSON schema of this engine's datastore args"
            ),
            "supported_action_types": {"type": "array", "items": action_type_schema(), "minItems": 1},
            # Null when engines run as local processes; otherwise {family, containerDefinitions[], volumes[]}.
            "ecs_task_definition": nullable("object"),
            "ecs_task_definition_arn": nullable("string", readonly=True),
            "tags": tags_field(),
        },
        # The original's models serialised a missing list as null, which its `array` type refused, so
        # supported_action_types was required in effect; saying so gives the clearer message.
        ["name", "supported_action_types"],
    )


def check_engine_schemas(data: dict[str, Any], root: str = "data") -> None:
    """Refuse an engine whose declared schemas are not valid JSON schemas, or whose action types repeat a
    name (an action names its type, so two of one name would make that lookup ambiguous). Run it after
    `default_and_validate(data, engine_schema())`."""
    options = data.get("options_json_schema")
    if options is not None:
        check_schema(options, f"{root}.options_json_schema")
    seen: set[str] = set()
    for index, action_type in enumerate(data.get("supported_action_types") or []):
        params = action_type.get("params_json_schema")
        if params is not None:
            check_schema(params, f"{root}.supported_action_types[{index}].params_json_schema")
        name = action_type.get("name")
        if name in seen:
            field = f"{root}.supported_action_types[{index}].name"
            raise SchemaValidationError(f"{field}: action type {name!r} is listed twice", field)
        seen.add(name)
