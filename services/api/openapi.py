"""The OpenAPI 3.1 document, generated from the route table and the entity schemas (served, without a key,
at ``/api/1/openapi.json`` and at the original's ``/api/1/swagger.json``)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import falcon

from services.api import openapi_graph, openapi_run_control, openapi_schedules
from services.api.openapi_params import (
    AS_OF,
    JSON_VALUE,
    NO_NUL,
    filters_parameter,
    future_time_pattern,
    order_by_parameter,
    without_nul,
)
from services.api.route import Route
from services.domain import schemas
from services.domain.schemas.validate import MAX_DESCRIPTION_CHARS, MAX_FREE_FORM_BYTES

ERROR = {"type": "object", "properties": {"results": {"const": "ERROR"}, "error_message": {"type": "string"}},
         "required": ["results", "error_message"]}
ERRORS = {
    400: "the request is malformed or the state rules refuse it; error_message names the field",
    401: "no key, an unknown key or a wrong secret",
    403: "the key may not do this",
    404: "no such entity (or route)",
    405: "the method is not allowed on this path",
    409: "the entity is not at the version the client stated (version_id or If-Match)",
    413: "the body is larger than the server's limit (DART_MAX_BODY_BYTES, 1 MiB by default)",
    415: "the body is not JSON",
    422: "the Idempotency-Key was used before by this key with a different body",
    429: "too many failed authentications from this address; Retry-After says when to try again",
}
ENVELOPE = {"type": "object", "properties": {
    "id": {"type": "string"}, "version_id": {"type": "integer"}, "created": {"type": "string"},
    "updated": {"type": "string"}, "data": {"type": "object"}}, "required": ["id", "version_id", "data"]}
EVENT = {"type": "object", "required": ["event_id", "stream_id", "stream_version", "global_position", "type",
                                         "schema_version", "data", "metadata", "recorded_at"]}
KEY: dict[str, Any] = {"type": "object", "required": ["key", "user_id", "role", "expires", "created"], "properties": {
    "key": {"type": "string"}, "user_id": {"type": "string"},
    "role": {"enum": ["viewer", "operator", "editor", "admin", "engine"]},
    "expires": {"type": ["string", "null"]}, "created": {"type": ["string", "null"]},
    "action_id": {"type": "string", "description": "a launch token's action"}}}
KEY_CREATED = {**KEY, "required": [*KEY["required"], "secret"],
               "properties": {**KEY["properties"], "secret": {"type": "string", "description": "shown once"}}}


def key_request() -> dict[str, Any]:
    return {"type": "object", "required": ["data"], "additionalProperties": False, "properties": {"data": {
        "type": "object", "additionalProperties": False, "required": ["user_id", "role"], "properties": {
            "user_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "role": {"enum": ["viewer", "operator", "editor", "admin"]},
            "expires": {"anyOf": [{"type": "string", "pattern": future_time_pattern()}, {"type": "null"}],
                        "description": "an ISO 8601 time with offset, in the future"}}}}}


BIGINT = 2**63 - 1
# Accepted and ignored, as the original did; version_id, when given, is the version the client expects (409
# when the entity is at another).
IGNORED_ENVELOPE: dict[str, Any] = {"id": {}, "version_id": {"type": ["integer", "null"]}, "created": {},
                                    "updated": {}}
LOG_GAPS = ("On PostgreSQL, global positions may skip values after a crash or a failed append (sequence values "
            "taken by a transaction that rolled back are never reused), so a gap in global_position is not a lost "
            "event: read on from next_after.")
SERVER_SET = {"user_id", "datastore_id", "workflow_id", "dataset_id", "engine_name", "state", "s3_artifacts_path",
              "s3_logs_path", "queued_time"}
STATIC_DATA = {"engine": "ENGINE_SCHEMA", "dataset": "DATASET_SCHEMA", "workflow": "WORKFLOW_SCHEMA",
               "subscription": "SUBSCRIPTION_SCHEMA", "event": "EVENT_SCHEMA"}
QUERY: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 0, "maximum": 10000},
    "offset": {"type": "integer", "minimum": 0, "maximum": BIGINT},
    "filters": {"type": "string", "description": 'a JSON array of "key op value" strings (reference §6)'},
    "order_by": {"type": "string", "description": 'a JSON array of "key ASC|DESC" strings'},
    "datastore_id": {"type": "string"}, "workflow_id": {"type": "string"},
    "as_of": {"type": "string", "pattern": AS_OF,
              "description": "a global position or an ISO 8601 time with offset"},
    "after": {"type": "integer", "minimum": 0, "maximum": BIGINT},
    "type": {"type": "string"}, "stream": {"type": "string"},
    "engine_name": {"type": "string"}, "action_id": {"type": "string"},
    "trigger_id": {"type": "string"},
    "state": {"type": "string", "enum": ["UNCONSUMED", "RESERVED", "ASSIGNED", "CONSUMED"]},
    "processed_after_s3_path": {"type": "string", "description": "an element's s3_path"},
    "s3_path": {"type": "string", "description": "s3://bucket/prefix"},
    "trigger_type_name": {"enum": [t.name for t in schemas.all_trigger_types()]},
    "max_lines": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
}


def request_data(entity: str, engines: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """What a client sends as ``data``: the entity schema without the fields the server sets. A datastore's
    and an action's schema depend on the engines registered when the document is served (one alternative an
    engine, or an engine's action type), a trigger's on its type. An action's type must also be one of its
    datastore's engine's (a 400 otherwise), which no schema can tie to the id in the path."""
    if entity == "datastore" and engines:
        return {"anyOf": [_client_side(schemas.datastore_schema(e.get("options_json_schema")),
                                       engine_name=e.get("name")) for e in engines]}
    if entity == "action" and engines:
        types = {(t.get("name"), json.dumps(t.get("params_json_schema"), sort_keys=True)): t
                 for e in engines for t in e.get("supported_action_types") or []}  # engines share some
        alternatives = [_client_side(schemas.action_schema(t.get("params_json_schema")),
                                     action_type_name=t.get("name")) for t in types.values()]
        return {"anyOf": alternatives or [{"not": {}}]}
    if entity == "trigger":
        return {"anyOf": [_client_side(schemas.trigger_schema(t.params_json_schema), trigger_type_name=t.name)
                          for t in schemas.all_trigger_types() if schemas.storable(t.name)]}
    if entity not in STATIC_DATA:
        return {"type": "object"}
    return _client_side(getattr(schemas, STATIC_DATA[entity]))


def _client_side(schema: dict[str, Any], **fixed: Any) -> dict[str, Any]:
    """The schema without the server's required fields; each of ``fixed`` required and a constant."""
    schema = copy.deepcopy(schema)
    schema["required"] = [r for r in schema.get("required", []) if r not in SERVER_SET or r in fixed]
    properties = schema["properties"]
    if isinstance(properties.get("description"), dict):  # checked in code, after the schema (validate.py)
        properties["description"] = {**properties["description"], "maxLength": MAX_DESCRIPTION_CHARS}
    for name in ("args", "extra_data"):
        if isinstance(properties.get(name), dict):
            capped = f"at most {MAX_FREE_FORM_BYTES:,} bytes of JSON (a 400 past that)"
            properties[name] = {**properties[name], "description": capped}
    for name, value in fixed.items():
        properties[name] = {"const": value}
        if name not in schema["required"]:
            schema["required"].append(name)
    return schema


def _responses(route: Route, method: str) -> dict[str, Any]:
    """The 200 answer of the route's shape, then every error answer (and the log stream's 503)."""
    out: dict[str, Any] = {"200": _ok_response(route, method)}
    for status, text in ERRORS.items():
        out[str(status)] = {"description": text, "content": {"application/json": {"schema": ERROR}}}
    if route.shape == "stream":
        out["503"] = {"description": "the server serves its most log streams already; see Retry-After",
                      "content": {"application/json": {"schema": ERROR}}}
    return out


def _ok_response(route: Route, method: str) -> dict[str, Any]:
    if route.shape in openapi_schedules.SHAPES:
        return openapi_schedules.ok_response(route.shape)
    if route.shape in openapi_run_control.SHAPES:
        return openapi_run_control.ok_response(route.shape)
    if route.shape in openapi_graph.SHAPES:
        return openapi_graph.ok_response(route.shape, method)
    if route.shape == "keys" and method == "GET":
        ok = {"type": "object", "properties": {"results": {"type": "array", "items": KEY},
                                               "limit": {"type": "integer"}, "offset": {"type": "integer"},
                                               "total": {"type": "integer"}}, "required": ["results"]}
    elif route.shape == "keys" and method == "POST":
        ok = {"type": "object", "properties": {"results": KEY_CREATED}, "required": ["results"]}
    elif route.shape == "key" and method == "GET":
        ok = {"type": "object", "properties": {"results": KEY}, "required": ["results"]}
    elif route.shape == "list" and method == "GET":
        ok = {"type": "object", "properties": {"results": {"type": "array"}, "limit": {"type": "integer"},
                                               "offset": {"type": "integer"}, "total": {"type": "integer"}},
              "required": ["results"]}
    elif route.shape in ("history",):
        ok = {"type": "object", "properties": {"results": {"type": "array", "items": EVENT}}}
    elif route.shape == "log":
        ok = {"type": "object", "properties": {"results": {"type": "array", "items": EVENT},
                                               "next_after": {"type": "integer"}}}
    elif method == "DELETE" or route.shape == "ok":
        ok = {"type": "object", "properties": {"results": {"const": "OK"}}}
    elif route.shape == "many":
        ok = {"type": "object", "properties": {"results": {"type": "array", "items": ENVELOPE}}}
    elif route.shape == "schema":
        ok = {"type": "object", "properties": {"results": {"type": "object"}}, "required": ["results"]}
    elif route.shape == "checkout":
        ok = {"type": "object", "properties": {"results": {"type": "object", "required": ["engine", "action",
                                                                                          "datastore"]}}}
    else:
        ok = {"type": "object", "properties": {"results": ENVELOPE}}
    return {"description": "OK", "content": {"application/json": {"schema": ok}}}


def _query(route: Route, name: str, engines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    schema: dict[str, Any] = dict(QUERY.get(name) or openapi_graph.QUERY.get(name) or openapi_run_control.QUERY[name])
    required = name == "search"
    if name == "filters" and route.entity:
        schema = filters_parameter(route.entity)
    elif name == "order_by" and route.entity:
        schema = order_by_parameter(route.entity)
    elif name == "engine_name" and engines:
        # The server refuses an unknown engine (400, the original's answer): the document names the known.
        schema, required = {"enum": sorted({e.get("name") for e in engines})}, route.shape != "sub_graph"
    elif name == "s3_path" and route.shape == "schema":  # the dataset guess: required and parsed
        schema, required = {"type": "string", "pattern": r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[!-~]{0,200}$",
                            "description": "s3://bucket/prefix"}, True
    return {"name": name, "in": "query", "required": required, "schema": _no_nul_text(schema)}


def _no_nul_text(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "string" and "pattern" not in schema:
        return {**schema, "pattern": NO_NUL}
    return schema


def _path_parameter(name: str, engines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "pattern": NO_NUL}
    if name == "engine_name" and engines:
        schema = {"enum": sorted({e.get("name") for e in engines})}
    elif name == "action_name" and engines:
        names = {t.get("name") for e in engines for t in e.get("supported_action_types") or []}
        schema = {"enum": sorted(names)}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _operation(route: Route, method: str, summary: str,
               engines: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    access = route.access[method]
    op: dict[str, Any] = {
        "summary": summary,
        "description": f"Role: {access.describe()}.",
        "x-dart-role": access.role,
        "operationId": method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", route.path).rstrip("_"),
        "responses": _responses(route, method),
    }
    if route.shape == "log":
        op["description"] = f"{op.get('description', '')} {LOG_GAPS}".strip()
    params = [_path_parameter(name, engines) for name in re.findall(r"{(\w+)}", route.path)]
    if method == "GET":
        params += [_query(route, q, engines) for q in route.query or ()]
    if params:
        op["parameters"] = params
    if access.engine:
        op["x-dart-launch-token"] = True  # the action's own launch token may call it too
    if access.state_role:
        op["x-dart-state-role"] = access.state_role  # may change only the entity's state
    _request_body(op, route, method, engines)
    return op


def _request_body(op: dict[str, Any], route: Route, method: str, engines: Sequence[dict[str, Any]]) -> None:
    if route.shape in openapi_schedules.SHAPES:
        op["requestBody"] = openapi_schedules.request_body(route.shape)
        for content in op["requestBody"]["content"].values():
            content["schema"] = without_nul(content["schema"])
        return
    graph_body = openapi_graph.request_body(route.shape, engines, request_data) if method == "POST" else None
    graph_body = graph_body or (openapi_run_control.request_body(route.shape) if method == "POST" else None)
    if graph_body is not None:
        op["requestBody"] = graph_body
    elif route.shape == "keys" and method == "POST":
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": key_request()}}}
    elif method in ("POST", "PUT") and route.entity:
        # The server refuses any other top-level field (check_envelope); id, version_id, created and updated
        # are accepted and ignored, as the original did.
        data = request_data(route.entity, engines)
        body: dict[str, Any] = {"type": "object", "properties": {**IGNORED_ENVELOPE, "data": data},
                                "required": ["data"], "additionalProperties": False}
        if route.shape == "many":
            body = {"oneOf": [body, {"type": "array", "minItems": 1, "items": body}]}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    elif method == "PATCH":
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "type": "array", "items": {"type": "object", "required": ["op", "path"]},
            "description": "an RFC 6902 JSON Patch over the whole entity"}}}}
    elif route.path.endswith("/checkin"):
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "required": ["state"],
            "properties": {"state": {"enum": ["SUCCESS", "FAILURE"]},
                           "error_message": {"type": ["string", "null"]},
                           "consume_subscription_state": {"enum": ["SUCCESS", "FAILURE", None]}}}}}}
    for content in op.get("requestBody", {}).get("content", {}).values():
        content["schema"] = without_nul(content["schema"])


def document(routes: Sequence[Route], engines: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The document; ``engines`` (the registered engines' data) make the datastore and action bodies and
    the engine and action names precise."""
    paths: dict[str, Any] = {}
    for route in routes:
        if route.documented and route.shape != "probe":
            paths[route.full_path] = {m.lower(): _operation(route, m, s, engines)
                                      for m, s in route.methods.items()}
    for route in routes:  # the probes last, open and with their 503
        if route.documented and route.shape == "probe":
            paths[route.full_path] = {"get": {
                "summary": route.methods["GET"], "security": [], "operationId": route.full_path.strip("/"),
                "responses": {"200": {"description": "OK"}, "503": {"description": "not ready"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "dart", "version": "1", "description": "dart's REST API (the original's paths and "
                 "envelope) plus history, the log and as_of time travel."},
        "paths": paths,
        "components": {"schemas": {"JsonValue": JSON_VALUE}, "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic", "description": "key:secret"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "key:secret"},
        }},
        "security": [{"basic": []}, {"bearer": []}],
    }


Engines = Callable[[], Sequence[dict[str, Any]]]


class OpenApiDocument:
    """``GET /api/1/openapi.json`` (and the original's ``/api/1/swagger.json``), built from the routes and
    the engines registered at the time of the request (a few milliseconds; clients fetch it rarely)."""

    def __init__(self, routes: Sequence[Route], engines: Engines = lambda: ()) -> None:
        self._routes = routes
        self._engines = engines

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = document(self._routes, self._engines())
        doc["servers"] = [{"url": f"{req.scheme}://{req.netloc}"}]
        resp.media = doc
