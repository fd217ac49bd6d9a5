"""Trigger matching (reference §7): which ACTIVE triggers a workflow's completion, an external event or another
trigger's fire concerns, and the super trigger's rule: ANY fires at once; ALL records each input and fires,
resetting its inputs, once every input is in. Super triggers nest: a super's fire is an input of the supers
watching it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.streams.trigger import TriggerFired, TriggerFireSkipped, TriggerInputRecorded
from events.types import Metadata, NewEvent, StreamAppend
from services.domain.ids import derived_event_id
from services.domain.rows import Row


def args(trigger: Row) -> Mapping[str, Any]:
    return trigger.data.get("args") or {}


def watching_workflow(triggers: Iterable[Row], workflow_id: str) -> list[Row]:
    """workflow_completion triggers on this workflow (the caller gives the ACTIVE ones of that type)."""
    return [t for t in triggers if args(t).get("completed_workflow_id") == workflow_id]


def watching_event(triggers: Iterable[Row], event_id: str) -> list[Row]:
    """event triggers on this event (the caller gives the ACTIVE ones of that type)."""
    return [t for t in triggers if args(t).get("event_id") == event_id]


def watching_trigger(supers: Iterable[Row], fired_trigger_id: str) -> list[Row]:
    """super triggers that have the fired trigger among their inputs."""
    return [t for t in supers if fired_trigger_id in (args(t).get("completed_trigger_ids") or [])]


def fires_on_any(trigger: Row) -> bool:
    return (args(trigger).get("fire_after") or "ALL") == "ANY"


def fired_event_id(cause: uuid.UUID, trigger_id: str) -> uuid.UUID:
    """The id of the fire a cause makes: the same cause fires a trigger once."""
    return derived_event_id(cause, f"fired:{trigger_id}")


def input_event_id(cause: uuid.UUID, trigger_id: str) -> uuid.UUID:
    return derived_event_id(cause, f"input:{trigger_id}")


def fire_note(trigger: Row, key: str, depth: int = 0) -> dict[str, Any]:
    """What a fire records: why it fired (its key), the workflows it starts, and (when other fires caused it)
    its depth in that chain of fires (services/domain/trigger_graph.py)."""
    note: dict[str, Any] = {"key": key, "workflow_ids": list(trigger.data.get("workflow_ids") or [])}
    if depth:
        note["depth"] = depth
    return note


def fire_depth(note: Mapping[str, Any] | None) -> int:
    """The depth a recorded fire's note holds (0: nothing fired it, or it was recorded before depths were)."""
    depth = (note or {}).get("depth")
    return depth if isinstance(depth, int) else 0


def fire_append(trigger: Row, cause: uuid.UUID, key: str, depth: int = 0) -> StreamAppend:
    """``TriggerFired`` on the trigger's stream at the version read, with the id the cause derives."""
    return StreamAppend(f"trigger-{trigger.id}", trigger.version, [NewEvent(
        TriggerFired(fire_note(trigger, key, depth)), Metadata(actor="orchestrator", causation_id=str(cause)),
        fired_event_id(cause, trigger.id))])


def skipped_fire_id(cause: uuid.UUID, trigger_id: str) -> uuid.UUID:
    return derived_event_id(cause, f"fire-skipped:{trigger_id}")


def skip_append(trigger: Row, cause: uuid.UUID, key: str, reason: str) -> StreamAppend:
    """``TriggerFireSkipped`` for a whole fire refused before it started anything (a chain too deep, an
    interval not yet over), with an id the cause derives so a repeat of the cause records it once."""
    note = {**fire_note(trigger, key), "reason": reason}
    return StreamAppend(f"trigger-{trigger.id}", trigger.version, [NewEvent(
        TriggerFireSkipped(note), Metadata(actor="orchestrator", causation_id=str(cause)),
        skipped_fire_id(cause, trigger.id))])


def interval_refusal(min_interval: float | None, last_fire: datetime | None, now: datetime) -> str | None:
    """Why a trigger allowing loops may not fire yet: its last fire was less than its interval ago."""
    if min_interval is None or last_fire is None:
        return None
    waited = (now - last_fire).total_seconds()
    if waited >= min_interval:
        return None
    return (f"fired {waited:.1f} s ago; args.allow_cycle_min_interval_seconds asks for at least "
            f"{min_interval:g} s between fires")


@dataclass(frozen=True)
class SuperAllInput:
    """A super ALL trigger's decision on one input: the append, and the fire's note when it completed."""

    append: StreamAppend
    fired: dict[str, Any] | None  # the note of the fire the append holds, when every input is in


def super_all_input(trigger: Row, fired_trigger_id: str, cause: uuid.UUID, now: str,
                    depth: int = 0) -> SuperAllInput:
    """Record one input of a super ALL trigger at ``now``. Once every input is in, the inputs reset and the
    trigger fires, in one append whose guard is the version the inputs were read at."""
    extra_data = dict(trigger.data.get("extra_data") or {})
    times = dict(extra_data.get("completed_trigger_id_times") or {})
    times[fired_trigger_id] = now
    complete = all(t in times for t in args(trigger).get("completed_trigger_ids") or [])
    extra_data["completed_trigger_id_times"] = {} if complete else times
    record = NewEvent(TriggerInputRecorded({"extra_data": extra_data}), Metadata(actor="orchestrator"),
                      input_event_id(cause, trigger.id))
    if not complete:
        return SuperAllInput(StreamAppend(f"trigger-{trigger.id}", trigger.version, [record]), None)
    note = fire_note(trigger, f"all:{','.join(sorted(times))}", depth)
    fired = NewEvent(TriggerFired(note), Metadata(actor="orchestrator", causation_id=str(cause)),
                     fired_event_id(cause, trigger.id))
    return SuperAllInput(StreamAppend(f"trigger-{trigger.id}", trigger.version, [record, fired]), note)
