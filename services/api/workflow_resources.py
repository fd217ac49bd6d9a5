"""Workflow run resources: a workflow's instances, its manual trigger, and the built-in trigger types."""

from __future__ import annotations

import uuid

import falcon

from services.api.listing import SchemaCache, int_param, list_entities
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.commands.triggers import fire_manual
from services.domain import schemas
from services.domain.errors import BadRequest


class WorkflowInstances:
    """``GET /workflow/{id}/instance`` and ``DELETE /workflow/{id}/instance`` (instances and their actions)."""

    def __init__(self, service: EntityService, schema_cache: SchemaCache) -> None:
        self.service = service
        self.schema_cache = schema_cache

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("workflow", entity_id)
        resp.media = list_entities(self.service, "workflow_instance", req, self.schema_cache,
                                   workflow_id=entity_id).as_dict()

    def on_delete(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("workflow", entity_id)
        reader = self.service.reader
        pairs = [("workflow_instance", i["id"]) for i in reader.find_by("workflow_instance", workflow_id=entity_id)]
        pairs += [("action", a["id"]) for a in reader.find_by("action", workflow_id=entity_id)
                  if a["data"].get("workflow_instance_id")]
        self.service.delete_children(pairs, req.context.principal)
        resp.media = {"results": "OK"}


class ManualTrigger:
    """``POST /workflow/{id}/do-manual-trigger``: 400 unless ACTIVE and below its concurrency; else an
    instance is started in this request, as one append guarded by the workflow's version."""

    def __init__(self, service: EntityService, orchestration: Orchestration) -> None:
        self.service = service
        self.orchestration = orchestration

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("workflow", entity_id)
        key = req.get_header("Idempotency-Key")
        caller = req.context.principal.key  # an Idempotency-Key is the caller's own: scoped to their key
        request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"manual/{caller}/{entity_id}/{key}") if key else uuid.uuid4()
        started = fire_manual(self.orchestration, entity_id, req.context.principal.user_id, request_id)
        if started.instance_id is None:
            raise BadRequest(started.refused or "the workflow could not be started")
        resp.media = {"results": "OK", "workflow_instance_id": started.instance_id}


class TriggerTypes:
    """``GET /trigger_type``: the built-in types, paged in memory (manual is not listed)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        listed = [
            {"name": t.name, "description": t.description, "params_json_schema": t.params_json_schema}
            for t in schemas.listed_trigger_types()
        ]
        limit = int_param(req, "limit", 20, 0, 10000)
        offset = int_param(req, "offset", 0)
        resp.media = {"results": listed[offset: offset + limit], "limit": limit, "offset": offset,
                      "total": len(listed)}
