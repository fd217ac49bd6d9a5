"""The OpenAPI shapes of the run-control routes (services/api/openapi.py asks here for ``cancel`` and
``action_logs``)."""

from __future__ import annotations

from typing import Any

SHAPES = frozenset({"cancel", "action_logs"})
QUERY: dict[str, dict[str, Any]] = {
    "follow": {"type": "boolean", "description": "stream the output as text/plain while the action runs"},
}
TEXT_OR_NULL = {"type": ["string", "null"]}
CANCELLED = {"type": "object", "required": ["results", "workflow_instance_id", "state"], "properties": {
    "results": {"const": "OK"}, "workflow_instance_id": {"type": "string"}, "state": {"type": "string"},
    "error_message": {"type": "string"}, "cancelled_actions": {"type": "array", "items": {"type": "string"}},
    "already_cancelled": {"type": "boolean"}}}
LOGS = {"type": "object", "required": ["results"], "properties": {"results": {
    "type": "object", "required": ["action_id", "text", "offset", "next_offset"], "properties": {
        "action_id": {"type": "string"}, "text": {"type": "string"}, "offset": {"type": "integer"},
        "next_offset": {"type": "integer"}, "source": {"enum": ["local", "s3", "cloudwatch", None]},
        "state": TEXT_OR_NULL, "finished": {"type": "boolean"}}}}}


def ok_response(shape: str) -> dict[str, Any]:
    if shape == "cancel":
        return {"description": "OK", "content": {"application/json": {"schema": CANCELLED}}}
    return {"description": "OK (with follow=true: text/plain, streamed)", "content": {
        "application/json": {"schema": LOGS}, "text/plain": {"schema": {"type": "string"}}}}


def request_body(shape: str) -> dict[str, Any] | None:
    if shape != "cancel":
        return None
    return {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": 500}}}}}}
