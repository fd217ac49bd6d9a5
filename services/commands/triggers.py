"""Firing triggers (reference §7): workflow_completion, event, scheduled and super (ALL/ANY, nested).

A fire is ``TriggerFired`` on the trigger's stream, with an event id derived from what caused it, so the
same cause (a redelivered event, a scheduled time seen by two schedulers) fires a trigger once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from events.errors import ConcurrencyError
from events.streams.trigger import TriggerFired, TriggerInputRecorded
from events.types import Metadata, NewEvent, StreamAppend
from services.commands.context import Orchestration, derived_event_id
from services.commands.runs import Fire, record_skipped_fire, skipped_event_id, start_instance


def fire_trigger(orch: Orchestration, trigger: Any, cause: uuid.UUID, key: str, user_id: str = "anonymous",
                 extra: list[StreamAppend] | None = None) -> bool:
    """Record the fire and start each of its workflows; False when this cause already fired it."""
    fired_id = derived_event_id(cause, f"fired:{trigger.id}")
    kind = trigger.data.get("trigger_type_name", "?")
    earlier = orch.store.read_by_ids([fired_id])
    if earlier:  # fired before; a crash may have come before its runs were started: finish that (idempotent)
        start_fired(orch, trigger.id, kind, earlier[0].data["note"]["workflow_ids"], fired_id, user_id)
        return False
    note = {"key": key, "workflow_ids": list(trigger.data.get("workflow_ids") or [])}
    orch.store.append(
        StreamAppend(f"trigger-{trigger.id}", trigger.version, [NewEvent(TriggerFired(note), Metadata(
            actor="orchestrator", causation_id=str(cause)), fired_id)]),
        *(extra or []),
    )
    start_fired(orch, trigger.id, kind, note["workflow_ids"], fired_id, user_id)
    return True


def start_fired(orch: Orchestration, trigger_id: str, kind: str, workflow_ids: list[str], fired_id: uuid.UUID,
                user_id: str) -> None:
    """Start the runs of a recorded fire: each instance id derives from the fire, so doing this again (after a
    crash, or a redelivery) starts nothing twice; a workflow already refused for this fire is not retried."""
    for workflow_id in workflow_ids:
        if orch.store.read_by_ids([skipped_event_id(fired_id, workflow_id)]):
            continue
        started = start_instance(orch, workflow_id, Fire(kind, trigger_id, 0, user_id,
                                                         uuid.uuid5(fired_id, workflow_id)))
        if started.instance_id is None:
            record_skipped_fire(orch, trigger_id, workflow_id, started.refused or "refused", fired_id)


def _fire_each(orch: Orchestration, matching: list[Any], cause: uuid.UUID, key: str) -> None:
    for trigger in matching:
        for _ in range(10):
            try:
                fire_trigger(orch, orch.reader.row("trigger", trigger.id) or trigger, cause, key)
            except ConcurrencyError:
                continue
            break


def on_instance_completed(orch: Orchestration, workflow_id: str, instance_id: str, cause: uuid.UUID) -> None:
    """workflow_completion: every ACTIVE trigger watching this workflow fires (never on FAILED)."""
    matching = [t for t in orch.triggers("workflow_completion")
                if (t.data.get("args") or {}).get("completed_workflow_id") == workflow_id]
    _fire_each(orch, matching, cause, f"instance:{instance_id}")


def on_external_event(orch: Orchestration, event_id: str, cause: uuid.UUID) -> bool:
    """event: nothing happens for a missing or INACTIVE event; else every ACTIVE trigger on it fires."""
    event = orch.reader.row("event", event_id)
    if event is None or event.data.get("state") != "ACTIVE":
        return False
    matching = [t for t in orch.triggers("event") if (t.data.get("args") or {}).get("event_id") == event_id]
    _fire_each(orch, matching, cause, f"event:{event_id}")
    return True


def on_trigger_fired(orch: Orchestration, fired_trigger_id: str, cause: uuid.UUID) -> None:
    """super: ANY fires at once; ALL records the input and fires (then resets) once every input is in."""
    for trigger in orch.triggers("super"):
        args = trigger.data.get("args") or {}
        if fired_trigger_id not in (args.get("completed_trigger_ids") or []):
            continue
        for _ in range(10):
            current = orch.reader.row("trigger", trigger.id)
            if current is None or current.data.get("state") != "ACTIVE":
                break
            try:
                _super_input(orch, current, fired_trigger_id, cause)
            except ConcurrencyError:
                continue
            break


def _super_input(orch: Orchestration, trigger: Any, fired_trigger_id: str, cause: uuid.UUID) -> None:
    args = trigger.data.get("args") or {}
    if (args.get("fire_after") or "ALL") == "ANY":
        fire_trigger(orch, trigger, cause, f"input:{fired_trigger_id}")
        return
    if orch.store.read_by_ids([derived_event_id(cause, f"input:{trigger.id}")]):
        # This input was recorded already; if it completed the trigger, make sure the fire's runs started.
        fired = orch.store.read_by_ids([derived_event_id(cause, f"fired:{trigger.id}")])
        if fired:
            start_fired(orch, trigger.id, "super", fired[0].data["note"]["workflow_ids"], fired[0].event_id,
                        "orchestrator")
        return
    extra_data = dict(trigger.data.get("extra_data") or {})
    times = dict(extra_data.get("completed_trigger_id_times") or {})
    times[fired_trigger_id] = datetime.now(UTC).isoformat()
    complete = all(t in times for t in args.get("completed_trigger_ids") or [])
    extra_data["completed_trigger_id_times"] = {} if complete else times
    record = NewEvent(TriggerInputRecorded({"extra_data": extra_data}), Metadata(actor="orchestrator"),
                      derived_event_id(cause, f"input:{trigger.id}"))
    if not complete:
        orch.store.append(StreamAppend(f"trigger-{trigger.id}", trigger.version, [record]))
        return
    # Reset and fire in one append: the fire's guard is the version after the reset.
    fired = derived_event_id(cause, f"fired:{trigger.id}")
    note = {"key": f"all:{','.join(sorted(times))}", "workflow_ids": list(trigger.data.get("workflow_ids") or [])}
    orch.store.append(StreamAppend(f"trigger-{trigger.id}", trigger.version, [record, NewEvent(
        TriggerFired(note), Metadata(actor="orchestrator", causation_id=str(cause)), fired)]))
    start_fired(orch, trigger.id, "super", note["workflow_ids"], fired, "orchestrator")


def fire_manual(orch: Orchestration, workflow_id: str, user_id: str, request_id: uuid.UUID) -> Any:
    """do-manual-trigger: decided inside the request, so the concurrency refusal is exact."""
    return start_instance(orch, workflow_id, Fire("manual", None, 0, user_id, request_id))


def trigger_args(trigger: Any) -> dict[str, Any]:
    return dict(trigger.data.get("args") or {})
