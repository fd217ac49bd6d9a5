"""The OpenAPI shapes of a schedule's controls (services/api/openapi.py asks here for the route shapes ``pause``
and ``backfill``): ``POST /trigger/{id}/pause|unpause`` and ``POST /trigger/{id}/backfill``."""

from __future__ import annotations

from typing import Any

from services.api.openapi_params import ISO_TIME
from services.domain.schedules import MAX_REASON_CHARS, OVERLAP_POLICIES

SHAPES = frozenset({"pause", "backfill"})
TIME = {"type": "string", "pattern": rf"^{ISO_TIME}$", "description": "an ISO 8601 time with an offset"}
ENVELOPE = {"type": "object", "properties": {
    "id": {"type": "string"}, "version_id": {"type": "integer"}, "created": {"type": ["string", "null"]},
    "updated": {"type": ["string", "null"]}, "data": {"type": "object"}}, "required": ["id", "data"]}
TIMES = {"type": "array", "items": {"type": "string"}}


def ok_response(shape: str) -> dict[str, Any]:
    if shape == "pause":
        schema = {"type": "object", "required": ["results", "changed"], "properties": {
            "results": ENVELOPE,
            "changed": {"type": "boolean", "description": "false: it already was (nothing recorded)"}}}
    else:
        schema = {"type": "object", "required": ["results"], "properties": {"results": {
            "type": "object", "required": ["dry_run", "scheduled_times", "already_fired"], "properties": {
                "dry_run": {"type": "boolean"},
                "scheduled_times": {**TIMES, "description": "the times fired (a dry run: that it would fire)"},
                "already_fired": {**TIMES, "description": "the times of the range fired before: not again"}}}}}
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def request_body(shape: str) -> dict[str, Any] | None:
    if shape == "pause":
        schema: dict[str, Any] = {"type": "object", "required": ["reason"], "additionalProperties": False,
                                  "properties": {"reason": {"type": "string", "minLength": 1,
                                                            "maxLength": MAX_REASON_CHARS, "pattern": r"\S",
                                                            "description": "why (recorded with the actor)"}}}
    elif shape == "backfill":
        schema = {"type": "object", "required": ["start", "end"], "additionalProperties": False, "properties": {
            "start": {**TIME, "description": "the first time of the range (included)"},
            "end": {**TIME, "description": "the last time of the range (included; not in the future)"},
            "dry_run": {"type": "boolean", "description": "only list the times it would fire"},
            "overlap_policy": {"enum": list(OVERLAP_POLICIES),
                               "description": "instead of the trigger's own, for these fires"}}}
    else:
        return None
    return {"required": True, "content": {"application/json": {"schema": schema}}}
