"""Every route of the REST API, in one table (reference §5; design.md §5 for the additions), the open probes
and documents included. The same table mounts the resources, says which role each method needs (``access``:
services/domain/roles.py; open rows need no key) and generates the OpenAPI document, so they cannot drift."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from services.api.engine_protocol import CheckIn, CheckOut
from services.api.event_resources import EventFire
from services.api.graph_resources import EntityGraph, GraphEntityIdentifiers, SubGraphCollection
from services.api.key_resources import ApiKeyCollection, ApiKeyHistory, ApiKeyItem
from services.api.log_stream import LogStream
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
from services.api.run_control_resources import ActionLogs, InstanceCancel
from services.api.schedule_resources import TriggerBackfill, TriggerPause
from services.api.schema_resources import SCHEMA_ROUTES, SchemaResource
from services.api.subgraph_resources import EngineSubgraphDefinitions
from services.api.subscription_resources import (
    ActionElements,
    ElementHistory,
    ElementStats,
    SubscriptionElements,
)
from services.api.whoami import WhoAmI
from services.api.workflow_resources import ManualTrigger, TriggerTypes, WorkflowInstances
from services.domain.graph import GRAPH_TYPES
from services.domain.roles import (
    ACTIVATE,
    ADMINISTER,
    EDIT,
    EDIT_OR_ENGINE,
    ENGINE_ONLY,
    NO_KEY,
    OPERATE,
    VIEW,
    Access,
)

EDITS = {"PUT", "PATCH", "DELETE"}


def _entity_routes(name: str, path: str, edits: set[str], creatable: bool, write: Access = EDIT,
                   changes: dict[str, Access] | None = None) -> list[Route]:
    """A kind's collection, item and history: reads for viewers, ``write`` for create and each edit unless
    ``changes`` names another rule for a method (activation, an engine's progress)."""
    writes = {m: (changes or {}).get(m, write) for m in (*edits, "POST")}
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
        Route(f"/{path}", collection_of, collection, name, "list", list_query,
              access={m: VIEW if m == "GET" else writes[m] for m in collection}),
        Route(f"/{path}/{{entity_id}}", item_of, item, name, "item", ("as_of",),
              access={m: VIEW if m == "GET" else writes[m] for m in item}),
        Route(f"/{path}/{{entity_id}}/history", history_of, {"GET": f"a {name}'s events"}, None, "history",
              ("limit", "offset"), access={"GET": VIEW}),
    ]


def _graph_routes() -> list[Route]:
    """The UI's graph (reference §5.10): reads for viewers; saving a subgraph creates entities, so editors."""
    def graph_of(entity_type: str) -> Callable[[Collaborators], EntityGraph]:
        return lambda c: EntityGraph(c.entities, entity_type)

    return [
        Route("/graph/entity_identifiers", lambda c: GraphEntityIdentifiers(c.entities),
              {"GET": "up to 20 entities whose id or name contains search (the graph's search box)"},
              None, "identifiers", ("search",), access={"GET": VIEW}),
        *(Route(f"/graph/{t}/{{entity_id}}", graph_of(t), {"GET": f"the graph of entities linked to a {t}"},
                None, "graph", (), access={"GET": VIEW}) for t in GRAPH_TYPES),
        Route("/graph/sub_graph", lambda c: SubGraphCollection(c.entities),
              {"GET": "the subgraph recipes for a selected entity, by engine name (null: engine-less ones)",
               "POST": "save an entity map of unsaved entities (UNSAVED-… placeholder ids) in one append"},
              None, "sub_graph", ("related_type", "related_id", "engine_name"), access={"GET": VIEW, "POST": EDIT}),
        Route("/engine/{entity_id}/subgraph_definition", lambda c: EngineSubgraphDefinitions(c.entities),
              {"GET": "an engine's stored subgraph definitions", "POST": "store a subgraph definition for an engine"},
              "subgraph_definition", "definitions", access={"GET": VIEW, "POST": ADMINISTER}),
        Route("/subgraph_definition/{entity_id}", lambda c: entity_item(c.entities, "subgraph_definition", {"DELETE"}),
              {"GET": "a subgraph definition (as_of: a global position or ISO time)",
               "DELETE": "delete a subgraph definition"}, "subgraph_definition", "item", ("as_of",),
              access={"GET": VIEW, "DELETE": ADMINISTER}),
        Route("/subgraph_definition/{entity_id}/history", lambda c: EntityHistory(c.entities, "subgraph_definition"),
              {"GET": "a subgraph definition's events"}, None, "history", ("limit", "offset"), access={"GET": VIEW}),
    ]


def _schedule_routes() -> list[Route]:
    """A scheduled trigger's controls (issue 15): operators pause, resume and backfill schedules."""
    return [
        Route("/trigger/{entity_id}/pause", lambda c: TriggerPause(c.entities, c.orchestration, True),
              {"POST": "pause a scheduled trigger, with a reason: it fires no time until unpaused"}, None, "pause",
              access={"POST": OPERATE}),
        Route("/trigger/{entity_id}/unpause", lambda c: TriggerPause(c.entities, c.orchestration, False),
              {"POST": "resume a paused scheduled trigger, with a reason: from its next scheduled time, without "
                       "the times missed while paused"}, None, "pause", access={"POST": OPERATE}),
        Route("/trigger/{entity_id}/backfill", lambda c: TriggerBackfill(c.entities, c.orchestration),
              {"POST": "fire a scheduled trigger for its times from start to end (both included) not fired yet, "
                       "under its overlap policy; dry_run: only list them"}, None, "backfill",
              access={"POST": OPERATE}),
    ]


def _engines(c: Collaborators) -> Callable[[], list[dict[str, Any]]]:
    """The registered engines' data, which the OpenAPI document describes datastores and actions with."""
    return lambda: [row["data"] for row in c.entities.reader.find_by("engine")]


def _schema_route(path: str, build: Callable[..., dict[str, Any]], query: tuple[str, ...], envelope: bool) -> Route:
    def schema_of(c: Collaborators) -> SchemaResource:
        return SchemaResource(c.entities, build, envelope)

    return Route(path, schema_of, {"GET": f"the JSON schema at {path}"}, None, "schema", query, access={"GET": VIEW})


ROUTES: list[Route] = [
    # Engines are code the server runs with its credentials: only admins register, change or delete them.
    *_entity_routes("engine", "engine", {"PUT", "DELETE"}, True, write=ADMINISTER),
    *_entity_routes("dataset", "dataset", {"PUT", "DELETE"}, True),
    # Editors only: it reads sample rows from any S3 prefix the server can read, in aid of creating a dataset.
    Route("/dataset/guess", lambda c: DatasetGuess(c.guess_dataset),
          {"GET": "guess a dataset from the first object under an S3 prefix"},
          None, "schema", ("s3_path", "max_lines"),  # "schema": results is a plain object (no entity, no id)
          access={"GET": EDIT}),
    *_entity_routes("datastore", "datastore", EDITS, True, changes={"PATCH": EDIT_OR_ENGINE}),
    *_entity_routes("action", "action", EDITS, False, changes={"PATCH": EDIT_OR_ENGINE}),  # an engine's progress
    *_entity_routes("workflow", "workflow", EDITS, False, changes={"PUT": ACTIVATE, "PATCH": ACTIVATE}),
    *_entity_routes("workflow_instance", "workflow/instance", set(), False),
    *_entity_routes("trigger", "trigger", EDITS, True, changes={"PUT": ACTIVATE, "PATCH": ACTIVATE}),
    *_entity_routes("subscription", "subscription", EDITS, False),
    *_entity_routes("event", "event", EDITS, True),
    Route("/datastore/{entity_id}/action", lambda c: NestedCreate(c.entities, "datastore", "action", many=True),
          {"POST": "create ad-hoc actions on a datastore (one or an array)"}, "action", "many",
          access={"POST": EDIT}),
    Route("/workflow/{entity_id}/action", lambda c: NestedCreate(c.entities, "workflow", "action", many=True),
          {"POST": "create TEMPLATE actions of a workflow (one or an array)"}, "action", "many",
          access={"POST": EDIT}),
    Route("/datastore/{entity_id}/workflow", lambda c: NestedCreate(c.entities, "datastore", "workflow"),
          {"POST": "create a workflow on a datastore"}, "workflow", "item", access={"POST": EDIT}),
    Route("/dataset/{entity_id}/subscription", lambda c: NestedCreate(c.entities, "dataset", "subscription"),
          {"POST": "create a subscription to a dataset"}, "subscription", "item", access={"POST": EDIT}),
    Route("/subscription/{entity_id}/element_stats", lambda c: ElementStats(c.entities),
          {"GET": "a subscription's element count and bytes per state"}, None, "list", access={"GET": VIEW}),
    Route("/subscription/{entity_id}/elements", lambda c: SubscriptionElements(c.entities),
          {"GET": "a subscription's elements by s3_path (state, processed_after_s3_path, paging)"}, None, "list",
          ("state", "processed_after_s3_path", "limit", "offset"), access={"GET": VIEW}),
    Route("/subscription/{entity_id}/element_history", lambda c: ElementHistory(c.entities),
          {"GET": "every event that changed one element of a subscription"}, None, "list", ("s3_path",),
          access={"GET": VIEW}),
    Route("/action/{entity_id}/subscription/elements", lambda c: ActionElements(c.entities),
          {"GET": "the subscription elements assigned to a consume_subscription action"}, None, "list",
          ("limit", "offset"), access={"GET": ENGINE_ONLY}),
    Route("/workflow/{entity_id}/instance", lambda c: WorkflowInstances(c.entities, c.schema_cache),
          {"GET": "a workflow's instances", "DELETE": "delete a workflow's instances and their actions"},
          "workflow_instance", "list", ("limit", "offset", "filters"), access={"GET": VIEW, "DELETE": EDIT}),
    Route("/trigger_type", lambda c: TriggerTypes(), {"GET": "the built-in trigger types"}, None, "list",
          ("limit", "offset"), access={"GET": VIEW}),
    # The caller's own key: the web UI (services/ui) asks it which actions to offer.
    Route("/whoami", lambda c: WhoAmI(), {"GET": "the calling key: its user and role"}, None, "schema",
          access={"GET": VIEW}),
    Route("/log", lambda c: Log(c.entities), {"GET": "the global event log"}, None, "log",
          ("after", "limit", "type", "stream"), access={"GET": ADMINISTER}),
    Route("/log/stream", lambda c: LogStream(c.entities.store), {"GET": "the global event log as it grows, as "
          "Server-Sent Events (id: the global position; resume with Last-Event-ID or after)"}, None, "stream",
          ("after", "type", "stream"), access={"GET": ADMINISTER}),
    *_graph_routes(),
    Route("/api_key", lambda c: ApiKeyCollection(c.store),
          {"GET": "list API keys (never a secret, salt or hash)",
           "POST": "create an API key for a user and role; the answer holds its secret, shown only once"},
          None, "keys", ("limit", "offset"), access={"GET": ADMINISTER, "POST": ADMINISTER}),
    Route("/api_key/{entity_id}", lambda c: ApiKeyItem(c.store),
          {"GET": "an API key (as_of: a global position or ISO time)",
           "DELETE": "revoke an API key (404 once revoked)"},
          None, "key", ("as_of",), access={"GET": ADMINISTER, "DELETE": ADMINISTER}),
    Route("/api_key/{entity_id}/history", lambda c: ApiKeyHistory(c.store), {"GET": "an API key's events"},
          None, "history", ("limit", "offset"), access={"GET": ADMINISTER}),
    Route("/engine/action/{entity_id}/checkout", lambda c: CheckOut(c.entities, c.secrets),
          {"PUT": "an engine checks out a PENDING action"}, None, "checkout", access={"PUT": ENGINE_ONLY}),
    Route("/engine/action/{entity_id}/checkin", lambda c: CheckIn(c.entities),
          {"PUT": "an engine checks in a RUNNING action's result"}, None, "ok", access={"PUT": ENGINE_ONLY}),
    *(_schema_route(*row) for row in SCHEMA_ROUTES),
    Route("/workflow/{entity_id}/do-manual-trigger", lambda c: ManualTrigger(c.entities, c.orchestration),
          {"POST": "start an instance now (400 if not ACTIVE or at its concurrency)"}, None, "ok",
          access={"POST": OPERATE}),
    Route("/workflow/instance/{entity_id}/cancel", lambda c: InstanceCancel(c.orchestration),
          {"POST": "cancel a QUEUED or RUNNING instance: its engines are stopped, its actions fail \"cancelled "
                   "by <you>\" (body: optional reason), no on_failure rule applies; a cancelled one answers as it "
                   "is, one that ended otherwise is a 400 naming its state"}, None, "cancel",
          access={"POST": OPERATE}),
    Route("/action/{entity_id}/logs", lambda c: ActionLogs(c.entities, c.logs),
          {"GET": "the action's engine output (stdout and stderr) from a byte offset; follow=true streams it as "
                  "text/plain while the action runs"}, None, "action_logs", ("offset", "follow"),
          access={"GET": VIEW}),
    *_schedule_routes(),
    Route("/event/{entity_id}/fire", lambda c: EventFire(c.entities, c.orchestration),
          {"POST": "fire every ACTIVE event trigger on this event, as a broker inbox message would (an "
                   "INACTIVE event fires nothing: fired false)"}, None, "ok", access={"POST": OPERATE}),
    # Open, outside /api/1: the probes, the metrics and the document itself (which is built from this table).
    Route("/health", lambda c: Health(), {"GET": "liveness"}, None, "probe", None, prefix="",
          access={"GET": NO_KEY}),
    Route("/ready", lambda c: Readiness(c.store, c.projections),
          {"GET": "readiness: store reachable, projection lag"}, None, "probe", None, prefix="",
          access={"GET": NO_KEY}),
    Route("/metrics", lambda c: Metrics(c.store, c.projections, c.counters), {"GET": "Prometheus metrics"},
          None, "probe", None, prefix="", documented=False, access={"GET": NO_KEY}),
    Route("/openapi.json", lambda c: OpenApiDocument(ROUTES, _engines(c)), {"GET": "this document"}, None,
          "schema", None, documented=False, access={"GET": NO_KEY}),
    Route("/swagger.json", lambda c: OpenApiDocument(ROUTES, _engines(c)),
          {"GET": "this document (the original's path)"}, None, "schema", None, documented=False,
          access={"GET": NO_KEY}),
]
OPEN_PATHS = frozenset(route.full_path for route in ROUTES if route.open)


def add_routes(app: falcon.App, parts: Collaborators) -> None:
    for route in ROUTES:
        resource = route.build(parts)
        if route.query is not None:
            resource.query_params = frozenset(route.query)  # checked by QueryCheck
        resource.access = route.access  # checked by AuthMiddleware
        app.add_route(route.full_path, resource)
