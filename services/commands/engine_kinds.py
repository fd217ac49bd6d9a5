"""The rules of engines, datasets and datastores (reference §3.1-§3.3): declared schemas, ECS task definitions,
datastores' secret args and S3 folders."""

from __future__ import annotations

import uuid
from typing import Any

from events.streams import (
    dataset,
    datastore,
    engine,
)
from events.types import Metadata
from services.commands.auth import Principal
from services.commands.kind_base import EntityService, Kind, _validate
from services.commands.secret_args import (
    SecretWrite,
    hold_secrets,
    kept_secrets,
    scrub,
    validation_schema,
    without_null_secrets,
)
from services.domain import schemas
from services.domain.errors import BadRequest


class EngineKind(Kind):
    category = "engine"
    created, updated, deleted = engine.EngineCreated, engine.EngineUpdated, engine.EngineDeleted
    default_order = "asc"
    unique_name = True

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.ENGINE_SCHEMA

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        data = super().validate(svc, data, before)
        for field in ("options_json_schema",):
            if data.get(field) is not None:
                _check_declared(field, data[field])
        for i, action_type in enumerate(data.get("supported_action_types") or []):
            if action_type.get("params_json_schema") is not None:
                _check_declared(f"supported_action_types.{i}.params_json_schema", action_type["params_json_schema"])
        limit = svc.context.max_task_memory_mb
        definition = data.get("ecs_task_definition") or {}
        memory = sum(int(c.get("memory") or 0) for c in definition.get("containerDefinitions") or [])
        if memory > limit:
            raise BadRequest(f"ecs_task_definition: containers ask for {memory} MB in all; the limit is {limit} MB")
        return data

    def cascade(self, svc: EntityService, entity_id: str) -> list[tuple[str, str]]:
        """An engine's subgraph definitions go with it, as in the original."""
        name = svc.reader.data("engine", entity_id).get("name")
        return [("subgraph_definition", d["id"]) for d in svc.reader.find_by("subgraph_definition", engine_name=name)]

    def before_write(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
        ecs = svc.context.ecs
        definition = after.get("ecs_task_definition")
        if ecs is None or not definition:
            return after
        if before is not None and before.get("ecs_task_definition") == definition and before.get("ecs_task_definition_arn"):
            return {**after, "ecs_task_definition_arn": before["ecs_task_definition_arn"]}
        try:
            arn = ecs.register(definition)
        except Exception as exc:  # botocore's ClientError and ParamValidationError: the definition is refused
            raise BadRequest(f"ecs_task_definition: ECS refused it: {exc}") from exc
        return {**after, "ecs_task_definition_arn": arn}

    def undo(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        ecs = svc.context.ecs
        arn = after.get("ecs_task_definition_arn")
        if ecs is not None and arn and arn != (before or {}).get("ecs_task_definition_arn"):
            ecs.deregister(arn)

    def after_write(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        ecs = svc.context.ecs
        old = (before or {}).get("ecs_task_definition_arn")
        if ecs is not None and old and old != (after or {}).get("ecs_task_definition_arn"):
            ecs.deregister(old)


def _check_declared(field: str, schema: Any) -> None:
    try:
        schemas.check_schema(schema)
    except schemas.SchemaValidationError as exc:
        raise BadRequest(f"{field}: not a valid JSON schema: {exc}") from exc


class DatasetKind(Kind):
    category = "dataset"
    created, updated, deleted = dataset.DatasetCreated, dataset.DatasetUpdated, dataset.DatasetDeleted
    default_order = "asc"
    unique_name = True

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.DATASET_SCHEMA

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        if isinstance(data.get("location"), str):
            data["location"] = data["location"].rstrip("/")
        return super().validate(svc, data, before)


def engine_by_name(svc: EntityService, name: Any) -> dict[str, Any]:
    found = svc.reader.find_by("engine", name=name) if isinstance(name, str) else []
    if not found:
        raise BadRequest(f"engine_name: unknown engine {name!r}")
    return found[0]["data"]


class DatastoreKind(Kind):
    category = "datastore"
    created, updated, deleted = datastore.DatastoreCreated, datastore.DatastoreUpdated, datastore.DatastoreDeleted
    editable = frozenset({"name", "host", "port", "connection_url", "state", "concurrency", "args", "extra_data", "tags"})

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.datastore_schema(engine_by_name(svc, data.get("engine_name")).get("options_json_schema"))

    def prepare(self, svc: EntityService, data: dict[str, Any], who: Principal, parent: Any,
                entity_id: str) -> None:
        super().prepare(svc, data, who, parent, entity_id)
        engine_by_name(svc, data.get("engine_name"))  # an unknown engine is named before anything else
        root = svc.context.s3_datastores_root
        base = f"{root}/{data.get('name')}/{data.get('engine_name')}"
        data["s3_artifacts_path"] = f"{base}/artifacts/{entity_id}"
        data["s3_logs_path"] = f"{base}/logs/{entity_id}"

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        """The whole body, secret args included (a required secret, its minLength). No error message holds
        a secret's value."""
        return self._validate_keeping(svc, data, before, set())

    def validate_update(self, svc: EntityService, entity_id: str, data: dict[str, Any],
                        before: dict[str, Any]) -> dict[str, Any]:
        """A secret an update leaves out (or sends as null, as a form round-trip of what GET served would) is
        kept, so it is neither required nor defaulted."""
        options = engine_by_name(svc, data.get("engine_name")).get("options_json_schema")
        if isinstance(data.get("args"), dict):
            data = {**data, "args": without_null_secrets(data["args"], options)}
        return self._validate_keeping(svc, data, before, kept_secrets(svc.store, entity_id, options, data.get("args")))

    def _validate_keeping(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None,
                          kept: set[str]) -> dict[str, Any]:
        options = engine_by_name(svc, data.get("engine_name")).get("options_json_schema")
        try:
            validated = _validate(data, schemas.datastore_schema(validation_schema(options, kept)))
        except BadRequest as exc:
            raise BadRequest(scrub(exc.message, data.get("args"), options)) from None
        if before is not None:
            self.check_transition(before, validated)
        return validated

    def hold_secrets(self, svc: EntityService, entity_id: str, before: dict[str, Any] | None,
                     data: dict[str, Any], meta: Metadata, cause: uuid.UUID | None,
                     ) -> tuple[dict[str, Any], SecretWrite | None]:
        options = engine_by_name(svc, data.get("engine_name")).get("options_json_schema")
        return hold_secrets(svc.store, entity_id, before is None, options, data, meta, cause)

    def check_transition(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        if before.get("state") == after.get("state"):
            return
        if before.get("state") == "TEMPLATE":
            raise BadRequest("state: TEMPLATE state cannot be changed")
        if after.get("state") not in ("ACTIVE", "INACTIVE", "DONE"):
            raise BadRequest(f"state: a datastore can be set to ACTIVE, INACTIVE or DONE, not {after.get('state')}")
