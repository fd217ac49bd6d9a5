"""The OpenAPI 3.1 document, generated from the route table and the entity schemas (served, without a key,
at ``/api/1/openapi.json`` and at the original's ``/api/1/swagger.json``)."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

import falcon

from services.api.route import Route
from services.domain import schemas

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
KEY_REQUEST = {"type": "object", "required": ["data"], "properties": {"data": {
    "type": "object", "additionalProperties": False, "required": ["user_id", "role"], "properties": {
        "user_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "role": {"enum": ["viewer", "operator", "editor", "admin"]},
        "expires": {"type": ["string", "null"], "description": "an ISO 8601 time with offset, in the future"}}}}}
BIGINT = 2**63 - 1
IGNORED_ENVELOPE: dict[str, Any] = {"id": {}, "version_id": {}, "created": {}, "updated": {}}
LOG_GAPS = ("On PostgreSQL, global positions may skip values after a crash or a failed append (sequence values "
            "taken by a transaction that rolled back are never reused), so a gap in global_position is not a lost "
            "event: read on from next_after.")
SERVER_SET = {"user_id", "datastore_id", "workflow_id", "dataset_id", "engine_name", "state", "s3_artifacts_path",
              "s3_logs_path", "queued_time"}
STATIC_DATA = {"engine": "ENGINE_SCHEMA", "dataset": "DATASET_SCHEMA", "workflow": "WORKFLOW_SCHEMA",
               "subscription": "SUBSCRIPTION_SCHEMA", "event": "EVENT_SCHEMA"}
QUERY = {
    "limit": {"type": "integer", "minimum": 0, "maximum": 10000},
    "offset": {"type": "integer", "minimum": 0, "maximum": BIGINT},
    "filters": {"type": "string", "description": 'a JSON array of "key op value" strings (reference §6)'},
    "order_by": {"type": "string", "description": 'a JSON array of "key ASC|DESC" strings'},
    "datastore_id": {"type": "string"}, "workflow_id": {"type": "string"},
    "as_of": {"type": "string", "description": "a global position or an ISO 8601 time with offset"},
    "after": {"type": "integer", "minimum": 0, "maximum": BIGINT},
    "type": {"type": "string"}, "stream": {"type": "string"},
    "engine_name": {"type": "string"}, "action_id": {"type": "string"}, "trigger_type_name": {"type": "string"},
    "trigger_id": {"type": "string"},
    "state": {"type": "string", "enum": ["UNCONSUMED", "RESERVED", "ASSIGNED", "CONSUMED"]},
    "processed_after_s3_path": {"type": "string", "description": "an element's s3_path"},
    "s3_path": {"type": "string", "description": "s3://bucket/prefix"},
    "max_lines": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
}


def request_data(entity: str) -> dict[str, Any]:
    """What a client sends as ``data``: the entity schema without the fields the server sets."""
    if entity not in STATIC_DATA:
        return {"type": "object"}
    schema = copy.deepcopy(getattr(schemas, STATIC_DATA[entity]))
    schema["required"] = [r for r in schema.get("required", []) if r not in SERVER_SET]
    return schema


def _responses(route: Route, method: str) -> dict[str, Any]:
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
    out: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    for status, text in ERRORS.items():
        out[str(status)] = {"description": text, "content": {"application/json": {"schema": ERROR}}}
    return out


def _operation(route: Route, method: str, summary: str) -> dict[str, Any]:
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
    params = []
    for name in re.findall(r"{(\w+)}", route.path):
        params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    if method == "GET":
        params += [{"name": q, "in": "query", "required": False, "schema": QUERY[q]} for q in route.query or ()]
    if params:
        op["parameters"] = params
    if access.engine:
        op["x-dart-launch-token"] = True  # the action's own launch token may call it too
    if access.state_role:
        op["x-dart-state-role"] = access.state_role  # may change only the entity's state
    if route.shape == "keys" and method == "POST":
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": KEY_REQUEST}}}
    elif method in ("POST", "PUT") and route.entity:
        # The server refuses any other top-level field (check_envelope); id, version_id, created and updated
        # are accepted and ignored, as the original did.
        body: dict[str, Any] = {"type": "object", "properties": {**IGNORED_ENVELOPE, "data": request_data(route.entity)},
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
    return op


def document(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in routes:
        if route.documented and route.shape != "probe":
            paths[route.full_path] = {m.lower(): _operation(route, m, s) for m, s in route.methods.items()}
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
        "components": {"securitySchemes": {
            "basic": {"type": "http", "scheme": "basic", "description": "key:secret"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "key:secret"},
        }},
        "security": [{"basic": []}, {"bearer": []}],
    }


class OpenApiDocument:
    """``GET /api/1/openapi.json`` (and the original's ``/api/1/swagger.json``), built once from the routes."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._doc = document(routes)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = dict(self._doc)
        doc["servers"] = [{"url": f"{req.scheme}://{req.netloc}"}]
        resp.media = doc
