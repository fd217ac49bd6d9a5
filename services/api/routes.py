"""Every route of the REST API, in one table (reference §5; design.md §5 for the additions), the open probes
and documents included. The same table mounts the resources, says which paths need no key and generates the
OpenAPI document, so the three cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from services.api.engine_protocol import CheckIn, CheckOut
from services.api.metrics import Metrics
from services.api.openapi import OpenApiDocument
from services.api.probes import Health, Readiness
from services.api.resources import (
    DatasetGuess,
    EntityCollection,
    EntityHistory,
    EntityItem,
    EntityList,
    Log,
    NestedCreate,
    entity_item,
)
from services.api.route import Collaborators, Route
from services.api.schema_resources import SCHEMA_ROUTES, SchemaResource
from services.api.subscription_resources import (
    ActionElements,
    ElementHistory,
    ElementStats,
    SubscriptionElements,
)
from services.api.workflow_resources import ManualTrigger, TriggerTypes, WorkflowInstances

EDIT = {"PUT", "PATCH", "DELETE"}


def _entity_routes(name: str, path: str, edits: set[str], creatable: bool) -> list[Route]:
    collection = {"GET": f"list {name}s (filters, paging)"}
    if creatable:
        collection["POST"] = f"create a {name}"
    item = {"GET": f"get a {name} (as_of: a global position or ISO time)"}
    item.update({m: f"{ {'PUT': 'replace', 'PATCH': 'JSON-Patch', 'DELETE': 'delete'}[m]} a {name}"
                 for m in sorted(edits)})
    list_query = ("limit", "offset", "filters") + (("order_by", "datastore_id", "workflow_id") if name == "action" else ())
    listing = EntityCollection if creatable else EntityList

    def collection_of(c: Collaborators) -> EntityList:
        return listing(c.entities, name, c.schema_cache)

    def item_of(c: Collaborators) -> EntityItem:
        return entity_item(c.entities, name, edits)

    def history_of(c: Collaborators) -> EntityHistory:
        return EntityHistory(c.entities, name)

    return [
        Route(f"/{path}", collection_of, collection, name, "list", list_query),
        Route(f"/{path}/{{entity_id}}", item_of, item, name, "item", ("as_of",)),
        Route(f"/{path}/{{entity_id}}/history", history_of, {"GET": f"a {name}'s events"}, None, "history",
              ("limit", "offset")),
    ]


def _schema_route(path: str, build: Callable[..., dict[str, Any]], query: tuple[str, ...], envelope: bool) -> Route:
    def schema_of(c: Collaborators) -> SchemaResource:
        return SchemaResource(c.entities, build, envelope)

    return Route(path, schema_of, {"GET": f"the JSON schema at {path}"}, None, "schema", query)


ROUTES: list[Route] = [
    *_entity_routes("engine", "engine", {"PUT", "DELETE"}, True),
    *_entity_routes("dataset", "dataset", {"PUT", "DELETE"}, True),
    Route("/dataset/guess", lambda c: DatasetGuess(c.guess_dataset),
          {"GET": "guess a dataset from the first object under an S3 prefix"},
          None, "schema", ("s3_path", "max_lines")),  # "schema": results is a plain object (no entity, no id)
    *_entity_routes("datastore", "datastore", EDIT, True),
    *_entity_routes("action", "action", EDIT, False),
    *_entity_routes("workflow", "workflow", EDIT, False),
    *_entity_routes("workflow_instance", "workflow/instance", set(), False),
    *_entity_routes("trigger", "trigger", EDIT, True),
    *_entity_routes("subscription", "subscription", EDIT, False),
    *_entity_routes("event", "event", EDIT, True),
    Route("/datastore/{entity_id}/action", lambda c: NestedCreate(c.entities, "datastore", "action", many=True),
          {"POST": "create ad-hoc actions on a datastore (one or an array)"}, "action", "many"),
    Route("/workflow/{entity_id}/action", lambda c: NestedCreate(c.entities, "workflow", "action", many=True),
          {"POST": "create TEMPLATE actions of a workflow (one or an array)"}, "action", "many"),
    Route("/datastore/{entity_id}/workflow", lambda c: NestedCreate(c.entities, "datastore", "workflow"),
          {"POST": "create a workflow on a datastore"}, "workflow", "item"),
    Route("/dataset/{entity_id}/subscription", lambda c: NestedCreate(c.entities, "dataset", "subscription"),
          {"POST": "create a subscription to a dataset"}, "subscription", "item"),
    Route("/subscription/{entity_id}/element_stats", lambda c: ElementStats(c.entities),
          {"GET": "a subscription's element count and bytes per state"}, None, "list"),
    Route("/subscription/{entity_id}/elements", lambda c: SubscriptionElements(c.entities),
          {"GET": "a subscription's elements by s3_path (state, processed_after_s3_path, paging)"}, None, "list",
          ("state", "processed_after_s3_path", "limit", "offset")),
    Route("/subscription/{entity_id}/element_history", lambda c: ElementHistory(c.entities),
          {"GET": "every event that changed one element of a subscription"}, None, "list", ("s3_path",)),
    Route("/action/{entity_id}/subscription/elements", lambda c: ActionElements(c.entities),
          {"GET": "the subscription elements assigned to a consume_subscription action"}, None, "list",
          ("limit", "offset")),
    Route("/workflow/{entity_id}/instance", lambda c: WorkflowInstances(c.entities, c.schema_cache),
          {"GET": "a workflow's instances", "DELETE": "delete a workflow's instances and their actions"},
          "workflow_instance", "list", ("limit", "offset", "filters")),
    Route("/trigger_type", lambda c: TriggerTypes(), {"GET": "the built-in trigger types"}, None, "list",
          ("limit", "offset")),
    Route("/log", lambda c: Log(c.entities), {"GET": "the global event log"}, None, "log",
          ("after", "limit", "type", "stream")),
    Route("/engine/action/{entity_id}/checkout", lambda c: CheckOut(c.entities, c.secrets),
          {"PUT": "an engine checks out a PENDING action"}, None, "checkout"),
    Route("/engine/action/{entity_id}/checkin", lambda c: CheckIn(c.entities),
          {"PUT": "an engine checks in a RUNNING action's result"}, None, "ok"),
    *(_schema_route(*row) for row in SCHEMA_ROUTES),
    Route("/workflow/{entity_id}/do-manual-trigger", lambda c: ManualTrigger(c.entities, c.orchestration),
          {"POST": "start an instance now (400 if not ACTIVE or at its concurrency)"}, None, "ok"),
    # Open, outside /api/1: the probes, the metrics and the document itself (which is built from this table).
    Route("/health", lambda c: Health(), {"GET": "liveness"}, None, "probe", None, prefix="", open=True),
    Route("/ready", lambda c: Readiness(c.store, c.projections),
          {"GET": "readiness: store reachable, projection lag"}, None, "probe", None, prefix="", open=True),
    Route("/metrics", lambda c: Metrics(c.store, c.projections, c.counters), {"GET": "Prometheus metrics"},
          None, "probe", None, prefix="", open=True, documented=False),
    Route("/openapi.json", lambda c: OpenApiDocument(ROUTES), {"GET": "this document"}, None, "schema", None,
          open=True, documented=False),
    Route("/swagger.json", lambda c: OpenApiDocument(ROUTES), {"GET": "this document (the original's path)"},
          None, "schema", None, open=True, documented=False),
]
OPEN_PATHS = frozenset(route.full_path for route in ROUTES if route.open)


def add_routes(app: falcon.App, parts: Collaborators) -> None:
    for route in ROUTES:
        resource = route.build(parts)
        if route.query is not None:
            resource.query_params = frozenset(route.query)  # checked by QueryCheck
        app.add_route(route.full_path, resource)
