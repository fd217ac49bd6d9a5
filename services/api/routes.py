"""Every route of the REST API, in one table (reference §5; design.md §5 for the additions). The same table
mounts the resources and generates the OpenAPI document, so the two cannot drift apart."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import falcon

from services.api.engine_protocol import CheckIn, CheckOut
from services.api.listing import int_param, list_entities
from services.api.resources import (
    DatasetGuess,
    EntityCollection,
    EntityHistory,
    EntityList,
    Log,
    NestedCreate,
    entity_item,
)
from services.api.schema_resources import SCHEMA_ROUTES, SchemaResource
from services.api.subscription_resources import (
    ActionElements,
    ElementHistory,
    ElementStats,
    SubscriptionElements,
)
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.commands.triggers import fire_manual
from services.domain import schemas
from services.domain.errors import BadRequest

PREFIX = "/api/1"
EDIT = {"PUT", "PATCH", "DELETE"}


class WorkflowInstances:
    """``GET /workflow/{id}/instance`` and ``DELETE /workflow/{id}/instance`` (instances and their actions)."""

    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("workflow", entity_id)
        resp.media = list_entities(self.service, "workflow_instance", req, workflow_id=entity_id).as_dict()

    def on_delete(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("workflow", entity_id)
        reader = self.service.reader
        pairs = [("workflow_instance", i["id"]) for i in reader.find_by("workflow_instance", workflow_id=entity_id)]
        pairs += [("action", a["id"]) for a in reader.find_by("action", workflow_id=entity_id)
                  if a["data"].get("workflow_instance_id")]
        self.service.delete_children(pairs, req.context.principal)
        resp.media = {"results": "OK"}


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


@dataclass(frozen=True)
class Route:
    """One path: how to build its resource, and what the OpenAPI document says of each method."""

    path: str
    build: Callable[[EntityService], Any]
    methods: dict[str, str]  # method -> summary
    entity: str | None = None  # the entity in request and response bodies
    shape: str = "item"  # item | list | many (a nested create taking one or an array) | ok | log | history
    query: tuple[str, ...] = ()
    errors: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _entity_routes(name: str, path: str, edits: set[str], creatable: bool) -> list[Route]:
    collection = {"GET": f"list {name}s (filters, paging)"}
    if creatable:
        collection["POST"] = f"create a {name}"
    item = {"GET": f"get a {name} (as_of: a global position or ISO time)"}
    item.update({m: f"{ {'PUT': 'replace', 'PATCH': 'JSON-Patch', 'DELETE': 'delete'}[m]} a {name}"
                 for m in sorted(edits)})
    list_query = ("limit", "offset", "filters") + (("order_by", "datastore_id", "workflow_id") if name == "action" else ())
    return [
        Route(f"/{path}", lambda s, n=name: (EntityCollection if creatable else EntityList)(s, n), collection,
              name, "list", list_query),
        Route(f"/{path}/{{entity_id}}", lambda s, n=name, e=edits: entity_item(s, n, e), item, name, "item",
              ("as_of",)),
        Route(f"/{path}/{{entity_id}}/history", lambda s, n=name: EntityHistory(s, n),
              {"GET": f"a {name}'s events"}, None, "history", ("limit", "offset")),
    ]


ROUTES: list[Route] = [
    *_entity_routes("engine", "engine", {"PUT", "DELETE"}, True),
    *_entity_routes("dataset", "dataset", {"PUT", "DELETE"}, True),
    Route("/dataset/guess", DatasetGuess, {"GET": "guess a dataset from the first object under an S3 prefix"},
          None, "schema", ("s3_path", "max_lines")),  # "schema": results is a plain object (no entity, no id)
    *_entity_routes("datastore", "datastore", EDIT, True),
    *_entity_routes("action", "action", EDIT, False),
    *_entity_routes("workflow", "workflow", EDIT, False),
    *_entity_routes("workflow_instance", "workflow/instance", set(), False),
    *_entity_routes("trigger", "trigger", EDIT, True),
    *_entity_routes("subscription", "subscription", EDIT, False),
    *_entity_routes("event", "event", EDIT, True),
    Route("/datastore/{entity_id}/action", lambda s: NestedCreate(s, "datastore", "action", many=True),
          {"POST": "create ad-hoc actions on a datastore (one or an array)"}, "action", "many"),
    Route("/workflow/{entity_id}/action", lambda s: NestedCreate(s, "workflow", "action", many=True),
          {"POST": "create TEMPLATE actions of a workflow (one or an array)"}, "action", "many"),
    Route("/datastore/{entity_id}/workflow", lambda s: NestedCreate(s, "datastore", "workflow"),
          {"POST": "create a workflow on a datastore"}, "workflow", "item"),
    Route("/dataset/{entity_id}/subscription", lambda s: NestedCreate(s, "dataset", "subscription"),
          {"POST": "create a subscription to a dataset"}, "subscription", "item"),
    Route("/subscription/{entity_id}/element_stats", ElementStats,
          {"GET": "a subscription's element count and bytes per state"}, None, "list"),
    Route("/subscription/{entity_id}/elements", SubscriptionElements,
          {"GET": "a subscription's elements by s3_path (state, processed_after_s3_path, paging)"}, None, "list",
          ("state", "processed_after_s3_path", "limit", "offset")),
    Route("/subscription/{entity_id}/element_history", ElementHistory,
          {"GET": "every event that changed one element of a subscription"}, None, "list", ("s3_path",)),
    Route("/action/{entity_id}/subscription/elements", ActionElements,
          {"GET": "the subscription elements assigned to a consume_subscription action"}, None, "list",
          ("limit", "offset")),
    Route("/workflow/{entity_id}/instance", WorkflowInstances,
          {"GET": "a workflow's instances", "DELETE": "delete a workflow's instances and their actions"},
          "workflow_instance", "list", ("limit", "offset", "filters")),
    Route("/trigger_type", lambda s: TriggerTypes(), {"GET": "the built-in trigger types"}, None, "list",
          ("limit", "offset")),
    Route("/log", Log, {"GET": "the global event log"}, None, "log", ("after", "limit", "type", "stream")),
    Route("/engine/action/{entity_id}/checkout", CheckOut,
          {"PUT": "an engine checks out a PENDING action"}, None, "checkout"),
    Route("/engine/action/{entity_id}/checkin", CheckIn,
          {"PUT": "an engine checks in a RUNNING action's result"}, None, "ok"),
    *(
        Route(path, lambda s, b=build, e=envelope: SchemaResource(s, b, e), {"GET": f"the JSON schema at {path}"},
              None, "schema", query)
        for path, build, query, envelope in SCHEMA_ROUTES
    ),
]


def add_routes(app: falcon.App, service: EntityService) -> None:
    for route in ROUTES:
        resource = route.build(service)
        resource.query_params = frozenset(route.query)  # checked by QueryCheck
        app.add_route(PREFIX + route.path, resource)


class ManualTrigger:
    """``POST /workflow/{id}/do-manual-trigger``: 400 unless ACTIVE and below its concurrency; else an
    instance is started in this request, as one append guarded by the workflow's version."""

    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("workflow", entity_id)
        key = req.get_header("Idempotency-Key")
        request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"manual/{entity_id}/{key}") if key else uuid.uuid4()
        orch = Orchestration(self.service.store, getattr(self.service.context, "s3_datastores_root",
                                                         "s3://dart/datastores"))
        started = fire_manual(orch, entity_id, req.context.principal.user_id, request_id)
        if started.instance_id is None:
            raise BadRequest(started.refused or "the workflow could not be started")
        resp.media = {"results": "OK", "workflow_instance_id": started.instance_id}


ROUTES.append(Route("/workflow/{entity_id}/do-manual-trigger", ManualTrigger,
                    {"POST": "start an instance now (400 if not ACTIVE or at its concurrency)"}, None, "ok"))
