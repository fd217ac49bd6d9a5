"""The built-in trigger types (reference §7): their names, descriptions and params schemas, which are listed
by `GET /trigger_type`, and which of them may be stored as triggers."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from services.domain.schemas.fields import Schema


@dataclass(frozen=True)
class TriggerType:
    """A built-in trigger type. `params_json_schema` is None for types that take no args; treat it as
    read-only (the schema builders copy it before embedding)."""

    name: str
    description: str
    params_json_schema: Schema | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "params_json_schema": copy.deepcopy(self.params_json_schema),
        }


# A trigger that would fire itself (through workflows' completions and super triggers) is refused, unless it
# says so with this: then it fires at most once per that many seconds (services/domain/trigger_graph.py).
ALLOW_CYCLE_FIELD: Schema = {
    "type": "integer", "minimum": 1, "maximum": 31_536_000,
    "description": "Allow this trigger on a loop (it would fire itself through workflows and other triggers); "
                   "it then fires at most once per this many seconds",
}
MANUAL = TriggerType("manual", "Manual triggering by a user")
RETRY = TriggerType("retry", "Triggering a workflow to rerun after failure")
SCHEDULED = TriggerType(
    "scheduled",
    "Triggering from a scheduler",
    {
        "type": "object",
        "properties": {
            "cron_pattern": {
                "type": "string",
                "description": "The CRON pattern for the schedule: AWS CloudWatch syntax (min hour "
                "day-of-month month day-of-week year, with ? in day-of-month or day-of-week, UTC) "
                "or standard 5-field cron",
            },
            # issue 15: Temporal's schedule policies (services/domain/schedules.py).
            "overlap_policy": {
                "type": "string", "enum": ["skip", "buffer_one", "allow_all"],
                "description": "When the workflow is at its concurrency: skip the fire (recorded), buffer_one (start "
                "it when a run ends; one waits at most) or allow_all (start it beyond the concurrency); default skip",
            },
            "catchup_policy": {
                "type": "string", "enum": ["latest", "none", "all"],
                "description": "Times missed while dart was down: fire the latest only, none, or all (oldest first) "
                "within catchup_window_seconds; default latest",
            },
            "catchup_window_seconds": {
                "type": "integer", "minimum": 1, "maximum": 31_536_000,
                "description": "With catchup_policy all: how late a missed time may still fire; default 86400 (a day)",
            },
        },
        "additionalProperties": False,
        "required": ["cron_pattern"],
    },
)
WORKFLOW_COMPLETION = TriggerType(
    "workflow_completion",
    "Triggering that occurs on the completion of a specific workflow",
    {
        "type": "object",
        "properties": {
            "completed_workflow_id": {
                "type": "string",
                "description": "Trigger fires whenever this workflow completes successfully",
            },
            "allow_cycle_min_interval_seconds": ALLOW_CYCLE_FIELD,
        },
        "additionalProperties": False,
        "required": ["completed_workflow_id"],
    },
)
EVENT = TriggerType(
    "event",
    "Triggering from a registered event",
    {
        "type": "object",
        "properties": {"event_id": {"type": "string", "description": "The id for the registered event"}},
        "additionalProperties": False,
        "required": ["event_id"],
    },
)
SUBSCRIPTION_BATCH = TriggerType(
    "subscription_batch",
    "Triggering that occurs each time subscription has reached the desired amount of unconsumed data",
    {
        "type": "object",
        "properties": {
            "subscription_id": {"type": "string", "description": "The id of the subscription"},
            "unconsumed_data_size_in_bytes": {
                "type": "integer",
                "minimum": 1,
                "description": "The trigger will fire once the unconsumed data size reaches this number of bytes",
            },
        },
        "additionalProperties": False,
        "required": ["subscription_id", "unconsumed_data_size_in_bytes"],
    },
)
SUPER = TriggerType(
    "super",
    "Triggering that occurs whenever all or any specified triggers have fired",
    {
        "type": "object",
        "properties": {
            "fire_after": {
                "type": "string",
                "enum": ["ALL", "ANY"],
                "default": "ALL",
                "description": "Fire this trigger after ALL or ANY of the specified triggers have fired",
            },
            "completed_trigger_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "allow_cycle_min_interval_seconds": ALLOW_CYCLE_FIELD,
        },
        "additionalProperties": False,
        # fire_after is filled from its default before validation, so requiring it costs clients nothing.
        "required": ["fire_after", "completed_trigger_ids"],
    },
)

TRIGGER_TYPES: dict[str, TriggerType] = {
    t.name: t for t in (MANUAL, RETRY, SCHEDULED, WORKFLOW_COMPLETION, EVENT, SUBSCRIPTION_BATCH, SUPER)
}
# Manual and retry runs are requests to run a workflow now, not standing rules, so no trigger entity of those
# types exists.
_NOT_STORABLE = frozenset({MANUAL.name, RETRY.name})


def all_trigger_types() -> list[TriggerType]:
    return list(TRIGGER_TYPES.values())


def listed_trigger_types() -> list[TriggerType]:
    """The types `GET /trigger_type` lists: all but manual (the original listed retry, so this does too)."""
    return [t for t in TRIGGER_TYPES.values() if t.name != MANUAL.name]


def trigger_type(name: str) -> TriggerType | None:
    return TRIGGER_TYPES.get(name)


def storable(name: str) -> bool:
    """Whether a trigger of this type may be saved: not manual or retry, and not an unknown type."""
    return name in TRIGGER_TYPES and name not in _NOT_STORABLE
