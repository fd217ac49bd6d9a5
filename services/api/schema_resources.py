"""The schema endpoints (reference §5.9): ``{results: <JSON schema>}`` for the UI and for scripts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from services.commands.engine_kinds import engine_by_name
from services.commands.entities import EntityService
from services.domain import schemas
from services.domain.errors import BadRequest

GUESS_FORM = {
    "type": "object",
    "properties": {"s3_path": {"type": "string", "pattern": r"^s3://.+$"},
                   "max_lines": {"type": "integer", "minimum": 1, "default": 30}},
    "required": ["s3_path"],
    "additionalProperties": False,
}


def _action_schema_for(svc: EntityService, engine_name: Any, action_name: str) -> dict[str, Any]:
    for action_type in engine_by_name(svc, engine_name).get("supported_action_types") or []:
        if action_type.get("name") == action_name:
            return schemas.action_schema(action_type.get("params_json_schema"))
    raise BadRequest(f'action_name: unknown action: "{action_name}" for engine {engine_name!r}')


class SchemaResource:
    """One schema endpoint; ``build(service, req, **path)`` returns the entity data schema to wrap."""

    def __init__(self, service: EntityService, build: Callable[..., dict[str, Any]], envelope: bool = True) -> None:
        self.service = service
        self.build = build
        self.envelope = envelope

    def on_get(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        schema = self.build(self.service, req, **path)
        resp.media = {"results": schemas.envelope_schema(schema) if self.envelope else schema}


def datastore_schema(svc: EntityService, req: falcon.Request, engine_name: str | None = None) -> dict[str, Any]:
    if engine_name is None:
        datastore_id = req.get_param("datastore_id")
        if not datastore_id:
            return schemas.datastore_schema(None)
        engine_name = svc.reader.data("datastore", datastore_id).get("engine_name")
    return schemas.datastore_schema(engine_by_name(svc, engine_name).get("options_json_schema"))


def action_schema(svc: EntityService, req: falcon.Request, action_name: str | None = None) -> dict[str, Any]:
    if action_name is None:
        action_id = req.get_param("action_id")
        if not action_id:
            return schemas.action_schema(None)
        action = svc.reader.data("action", action_id)
        return _action_schema_for(svc, action.get("engine_name"), str(action.get("action_type_name")))
    engine_name = req.get_param("engine_name")
    for param, category in (("datastore_id", "datastore"), ("workflow_id", "workflow"), ("action_id", "action")):
        entity_id = req.get_param(param)
        if engine_name is None and entity_id:
            engine_name = svc.reader.data(category, entity_id).get("engine_name")
    if engine_name is None:
        raise BadRequest("query: one of engine_name, datastore_id, workflow_id or action_id is required")
    return _action_schema_for(svc, engine_name, action_name)


def trigger_schema(svc: EntityService, req: falcon.Request) -> dict[str, Any]:
    type_name = req.get_param("trigger_type_name")
    trigger_id = req.get_param("trigger_id")
    if trigger_id:
        type_name = svc.reader.data("trigger", trigger_id).get("trigger_type_name")
    if type_name is None:
        return schemas.trigger_schema(None)
    found = schemas.trigger_type(str(type_name))
    if found is None:
        raise BadRequest(f"trigger_type_name: unknown trigger type {type_name!r}")
    return schemas.trigger_schema(found.params_json_schema)


def static(category: str) -> Callable[..., dict[str, Any]]:
    return lambda svc, req: schemas.schema_for(category)


SCHEMA_ROUTES: list[tuple[str, Callable[..., dict[str, Any]], tuple[str, ...], bool]] = [
    ("/schema/engine", static("engine"), (), True),
    ("/schema/dataset", static("dataset"), (), True),
    ("/schema/dataset/guess", lambda svc, req: GUESS_FORM, (), False),
    ("/schema/engine/{engine_name}/datastore", datastore_schema, (), True),
    ("/schema/datastore", datastore_schema, ("datastore_id",), True),
    ("/schema/action", action_schema, ("action_id",), True),
    ("/schema/action/{action_name}", action_schema, ("engine_name", "datastore_id", "workflow_id", "action_id"), True),
    ("/schema/workflow", static("workflow"), (), True),
    ("/schema/workflow/instance", static("workflow_instance"), (), True),
    ("/schema/trigger_type", lambda svc, req: schemas.trigger_type_schema(), (), False),
    ("/schema/trigger", trigger_schema, ("trigger_type_name", "trigger_id"), True),
    ("/schema/event", static("event"), (), True),
    ("/schema/subscription", static("subscription"), (), True),
]
