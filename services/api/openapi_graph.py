"""The OpenAPI shapes of the graph routes, the subgraph definitions and the log stream (services/api/openapi.py
asks here for the route shapes it does not know: ``identifiers``, ``graph``, ``sub_graph``, ``definitions``,
``stream``)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from services.api.openapi_params import without_nul
from services.domain import schemas
from services.domain.graph import GRAPH_TYPES
from services.domain.sub_graph_recipes import subgraph_definition_schema

SHAPES = frozenset({"identifiers", "graph", "sub_graph", "definitions", "stream"})
RELATED_TYPES = (*GRAPH_TYPES, "workflow_instance")
NODE_TYPES = (*GRAPH_TYPES, "workflow_instance")
TEXT_OR_NULL = {"type": ["string", "null"]}
ENVELOPE = {"type": "object", "properties": {
    "id": {"type": "string"}, "version_id": {"type": ["integer", "null"]}, "created": TEXT_OR_NULL,
    "updated": TEXT_OR_NULL, "data": {"type": "object"}}, "required": ["id", "data"]}
NODE = {"type": "object", "required": ["entity_type", "entity_id", "name", "state", "sub_type"], "properties": {
    "entity_type": {"enum": list(NODE_TYPES)}, "entity_id": {"type": "string"}, "name": TEXT_OR_NULL,
    "state": TEXT_OR_NULL, "sub_type": TEXT_OR_NULL}}
EDGE = {"type": "object", "required": ["source_type", "source_id", "destination_type", "destination_id"],
        "properties": {"source_type": {"type": "string"}, "source_id": {"type": "string"},
                       "destination_type": {"type": "string"}, "destination_id": {"type": "string"}}}
GRAPH = {"type": "object", "required": ["nodes", "edges"],
         "properties": {"nodes": {"type": "array", "items": NODE}, "edges": {"type": "array", "items": EDGE}}}
SUB_GRAPH = {"type": "object", "required": ["name", "graph", "entity_map"], "properties": {
    "name": {"type": "string"}, "description": TEXT_OR_NULL, "related_type": TEXT_OR_NULL,
    "related_is_a": {"enum": ["PARENT", "CHILD", None]}, "graph": GRAPH,
    "entity_map": {"type": "object", "additionalProperties": ENVELOPE},
    "icon": TEXT_OR_NULL, "md_icon": TEXT_OR_NULL}}
NODE_KEY = f"^({'|'.join(GRAPH_TYPES)})-(UNSAVED|PARENT|CHILD)-[^\\x00]*$"
QUERY: dict[str, dict[str, Any]] = {
    "search": {"type": "string", "minLength": 1, "description": "a part of an entity's id or name"},
    "related_type": {"enum": list(RELATED_TYPES), "description": "the selected entity's type"},
    "related_id": {"type": "string", "description": "the selected entity (its engine chooses the recipes)"},
}
STREAM_DESCRIPTION = (
    "text/event-stream: one message per event: `id:` its global position, `event:` its type, `data:` the event "
    "as an item of GET /log. It streams when the request's Accept names text/event-stream (EventSource's "
    "does); otherwise the answer is the events there now (at most 200) and ends. A reconnecting client sends "
    "Last-Event-ID and gets every later event once. A "
    "comment line keeps the connection alive; the server ends a stream after five minutes (reconnect with "
    "Last-Event-ID) and answers 503 with Retry-After when it serves its most streams already.")


def ok_schema(shape: str, method: str) -> dict[str, Any]:
    if shape == "identifiers":
        item = {"type": "object", "required": ["entity_type", "entity_id", "name"], "properties": {
            "entity_type": {"enum": list(GRAPH_TYPES)}, "entity_id": {"type": "string"}, "name": TEXT_OR_NULL}}
        results: dict[str, Any] = {"type": "array", "maxItems": 20, "items": item}
    elif shape == "graph":
        results = GRAPH
    elif shape == "sub_graph" and method == "GET":
        results = {"type": "object", "additionalProperties": {"type": "array", "items": SUB_GRAPH},
                   "description": 'recipes by engine name; "null" holds the engine-less ones'}
    elif shape == "sub_graph":
        results = {"type": "object", "additionalProperties": ENVELOPE,
                   "description": "each saved entity under its entity-map key"}
    elif shape == "definitions" and method == "GET":
        results = {"type": "array", "items": ENVELOPE}
    else:
        results = ENVELOPE
    return {"type": "object", "properties": {"results": results}, "required": ["results"]}


def ok_response(shape: str, method: str) -> dict[str, Any]:
    if shape == "stream":
        return {"description": STREAM_DESCRIPTION, "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    return {"description": "OK", "content": {"application/json": {"schema": ok_schema(shape, method)}}}


RequestData = Callable[[str, Sequence[dict[str, Any]]], dict[str, Any]]
# The references a saved entity must have (a workflow its datastore ...): its own create takes them from the path.
REQUIRED_REFERENCES = {"workflow": ("datastore_id",), "subscription": ("dataset_id",)}


def request_body(shape: str, engines: Sequence[dict[str, Any]], request_data: RequestData) -> dict[str, Any] | None:
    if shape == "sub_graph":
        return {"required": True, "content": {"application/json": {
            "schema": sub_graph_request(engines, request_data)}}}
    if shape == "definitions":
        return {"required": True, "content": {"application/json": {"schema": definition_request(engines)}}}
    return None


def sub_graph_request(engines: Sequence[dict[str, Any]], request_data: RequestData) -> dict[str, Any]:
    """An entity map: each ``<type>-UNSAVED-<id>`` entity's ``data`` is what its own create takes, with the
    references its create takes from the path (a workflow's datastore_id ...) naming saved entities or the
    map's placeholders; a ``PARENT-…``/``CHILD-…`` entity stands for the selected entity and is not saved. The
    server refuses, naming the entity's key and the field, what its kind's rules refuse against what it holds."""
    def envelope(data: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "required": ["data"], "additionalProperties": False, "properties": {
            "id": {}, "version_id": {}, "created": {}, "updated": {}, "data": data}}

    def data_of(entity_type: str) -> dict[str, Any]:
        data = copy.deepcopy(request_data(entity_type, engines))
        needed = REQUIRED_REFERENCES.get(entity_type)
        if needed:
            data = {"allOf": [data, {"type": "object", "required": list(needed),
                                     "properties": {f: {"type": "string"} for f in needed}}]}
        if entity_type == "action":
            data = {"allOf": [data, {"anyOf": [{"type": "object", "required": [f], "properties": {f: {"type": "string"}}}
                                               for f in ("workflow_id", "datastore_id")]}]}
        return without_nul(data)  # type: ignore[no-any-return]

    kinds = "|".join(GRAPH_TYPES)
    entities = {f"^{t}-UNSAVED-": envelope(data_of(t)) for t in GRAPH_TYPES}
    entities[f"^({kinds})-(PARENT|CHILD)-"] = envelope({"type": "object"})
    related = {"type": "object", "required": ["entity_type", "entity_id"], "properties": {
        "entity_type": {"type": "string"}, "entity_id": {"type": "string"},
        "relationship": {"enum": ["PARENT", "CHILD", None]},
        "edge": {"anyOf": [{"type": "null"}, EDGE]}}}
    return {"type": "object", "additionalProperties": False, "required": ["unsaved_entities"], "properties": {
        "unsaved_entities": {"type": "object", "maxProperties": 1000, "propertyNames": {"pattern": NODE_KEY},
                             "patternProperties": entities},
        "related_entity_data": {"anyOf": [{"type": "null"},
                                          {"type": "object", "additionalProperties": related}]}}}


def definition_request(engines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A subgraph definition; its actions' types must be the path's engine's (a 400 naming the action)."""
    names = sorted({str(t["name"]) for e in engines for t in e.get("supported_action_types") or []
                    if isinstance(t, dict) and isinstance(t.get("name"), str)})
    triggers = [t.name for t in schemas.all_trigger_types() if schemas.storable(t.name)]
    data = subgraph_definition_schema(triggers, names)
    data["required"] = ["name"]  # engine_name is the path's engine's
    return {"type": "object", "required": ["data"], "additionalProperties": False,
            "properties": {"id": {}, "version_id": {"type": ["integer", "null"]}, "created": {}, "updated": {},
                           "data": data}}
