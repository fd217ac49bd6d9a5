"""Firing triggers (reference §7): workflow_completion, event, scheduled and super (ALL/ANY, nested). The
matching and the super rule are in services/domain/trigger_rules.py.

A fire is ``TriggerFired`` on the trigger's stream, with an event id derived from what caused it, so the
same cause (a redelivered event, a scheduled time seen by two schedulers) fires a trigger once. A fire caused
by a chain of fires too deep, or by a trigger allowing loops before its interval is over, is
``TriggerFireSkipped`` instead (services/domain/trigger_graph.py).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from events.context import CORRELATION_ID, ambient
from events.types import StreamAppend
from services.commands import schedule_buffer, tracing
from services.commands.context import Orchestration
from services.commands.retry import StillConflicting, retry_on_conflict
from services.commands.runs import Fire, Started, record_skipped_fire, skipped_event_id, start_instance
from services.domain import schedules, trigger_graph, trigger_rules

log = logging.getLogger("dart.orchestrator")


def fire_trigger(orch: Orchestration, trigger: Any, cause: uuid.UUID, key: str, user_id: str = "anonymous",
                 extra: list[StreamAppend] | None = None, depth: int = 0, overlap: str | None = None) -> bool:
    """Record the fire and start each of its workflows; False when this cause already fired it, or the fire
    is refused (``depth``: how many fires led to this one; ``overlap``: a scheduled fire's overlap policy, the
    trigger's own by default). A span of the runs' trace (their root, for a cron fire), and the runs' correlation
    id where none is set yet: the fire's cause, the same on every scheduler replica (issue 15)."""
    kind = trigger.data.get("trigger_type_name", "?")
    with (tracing.span(f"fire {kind} trigger", attributes={"dart.trigger_id": trigger.id, "dart.fire_key": key}),
          ambient(correlation_id=None if CORRELATION_ID.get() else str(cause))):
        return _fire_trigger(orch, trigger, cause, key, user_id, extra, depth, overlap)


def _fire_trigger(orch: Orchestration, trigger: Any, cause: uuid.UUID, key: str, user_id: str,
                  extra: list[StreamAppend] | None, depth: int, overlap: str | None) -> bool:
    fired_id = trigger_rules.fired_event_id(cause, trigger.id)
    kind = trigger.data.get("trigger_type_name", "?")
    scheduled_time = schedules.scheduled_time_of(key) if kind == "scheduled" else None
    if kind == "scheduled":
        overlap = overlap or schedules.policy(trigger.data.get("args")).overlap
    earlier = orch.store.read_by_ids([fired_id, trigger_rules.skipped_fire_id(cause, trigger.id)])
    fired = [e for e in earlier if e.event_id == fired_id]
    if fired:  # fired before; a crash may have come before its runs were started: finish that (idempotent)
        start_fired(orch, trigger.id, kind, fired[0].data["note"]["workflow_ids"], fired_id, user_id,
                    scheduled_time, overlap or "skip")
        return False
    if earlier:
        return False  # this cause's fire was refused before
    refused = fire_refusal(orch, trigger, depth)
    if refused is not None:
        orch.store.append(trigger_rules.skip_append(trigger, cause, key, refused))
        log.warning("trigger %s not fired for %s: %s", trigger.id, cause, refused)
        return False
    orch.store.append(trigger_rules.fire_append(trigger, cause, key, depth), *(extra or []))
    start_fired(orch, trigger.id, kind, trigger_rules.fire_note(trigger, key)["workflow_ids"], fired_id, user_id,
                scheduled_time, overlap or "skip")
    return True


def fire_refusal(orch: Orchestration, trigger: Any, depth: int) -> str | None:
    """Why the trigger may not fire now: a chain of fires too deep, or (for a trigger allowing loops) its
    last fire less than its interval ago."""
    interval = trigger_graph.min_interval(trigger.data)
    return trigger_graph.too_deep(depth) or trigger_rules.interval_refusal(
        interval, last_fire(orch, trigger) if interval is not None else None, datetime.now(UTC))


def last_fire(orch: Orchestration, trigger: Any, window: int = 50) -> datetime | None:
    """When the trigger last fired, from the last ``window`` events of its stream (None: not among them)."""
    events = orch.store.read_stream(f"trigger-{trigger.id}", max(1, trigger.version - window + 1), trigger.version)
    return next((e.recorded_at for e in reversed(events) if e.type == "TriggerFired"), None)


def fire_depth(orch: Orchestration, fired_event: uuid.UUID) -> int | None:
    """The depth of a recorded fire (None when the event is not a fire)."""
    found = orch.store.read_by_ids([fired_event])
    if not found or found[0].type != "TriggerFired":
        return None
    return trigger_rules.fire_depth(found[0].data.get("note"))


def instance_fire_depth(orch: Orchestration, workflow_id: str, instance_id: str) -> int | None:
    """The depth of the fire that started an instance (None for a manual or retry run): the instance's
    creation is caused by ``uuid5(<fire's event id>, <workflow id>)`` (start_fired), found among the recent
    fires of the trigger the instance names."""
    instance = orch.reader.row("workflow_instance", instance_id)
    trigger_id = instance.data.get("trigger_id") if instance is not None else None
    if not trigger_id:
        return None
    created = orch.store.read_stream(f"workflow_instance-{instance_id}", to_version=1)
    started_by = created[0].metadata.get("causation_id") if created else None
    trigger = orch.reader.row("trigger", str(trigger_id))
    if started_by is None or trigger is None:
        return None
    events = orch.store.read_stream(f"trigger-{trigger.id}", max(1, trigger.version - 49), trigger.version)
    for event in reversed(events):
        if event.type == "TriggerFired" and str(uuid.uuid5(event.event_id, workflow_id)) == started_by:
            return trigger_rules.fire_depth(event.data.get("note"))
    return None


def start_fired(orch: Orchestration, trigger_id: str, kind: str, workflow_ids: list[str], fired_id: uuid.UUID,
                user_id: str, scheduled_time: str | None = None, overlap: str = "skip") -> None:
    """Start the runs of a recorded fire: each instance id derives from the fire, so doing this again (after a
    crash, or a redelivery) starts nothing twice; a workflow already refused for this fire is not retried, nor
    one whose start waits under the buffer_one overlap policy (services/commands/schedule_buffer.py)."""
    for workflow_id in workflow_ids:
        if orch.store.read_by_ids([skipped_event_id(fired_id, workflow_id),
                                   schedule_buffer.buffered_event_id(fired_id, workflow_id)]):
            continue
        fire = Fire(kind, trigger_id, 0, user_id, uuid.uuid5(fired_id, workflow_id), scheduled_time, overlap)
        started = start_instance(orch, workflow_id, fire)
        if started.instance_id is None:
            refused = started.refused or "refused"
            if overlap == "buffer_one":
                skipped = schedule_buffer.buffer_fire(orch, trigger_id, workflow_id, fired_id, fire)
                if skipped is None:
                    continue
                refused = skipped
            record_skipped_fire(orch, trigger_id, workflow_id, refused, fired_id)


def _fire_each(orch: Orchestration, matching: list[Any], cause: uuid.UUID, key: str,
               parent_depth: int | None = None) -> None:
    for trigger in matching:

        def attempt(trigger: Any = trigger) -> bool:
            current = orch.reader.row("trigger", trigger.id) or trigger
            depth = trigger_graph.chain_depth(parent_depth, trigger_graph.min_interval(current.data) is not None)
            return fire_trigger(orch, current, cause, key, depth=depth)

        try:
            retry_on_conflict(attempt, what=f"trigger {trigger.id}")
        except StillConflicting:
            log.warning("trigger %s kept changing: not fired for %s", trigger.id, cause)


def on_instance_completed(orch: Orchestration, workflow_id: str, instance_id: str, cause: uuid.UUID) -> None:
    """workflow_completion: every ACTIVE trigger watching this workflow fires (never on FAILED)."""
    matching = trigger_rules.watching_workflow(orch.triggers("workflow_completion"), workflow_id)
    if matching:
        _fire_each(orch, matching, cause, f"instance:{instance_id}",
                   instance_fire_depth(orch, workflow_id, instance_id))


def on_external_event(orch: Orchestration, event_id: str, cause: uuid.UUID) -> bool:
    """event: nothing happens for a missing or INACTIVE event; else every ACTIVE trigger on it fires."""
    return fire_event(orch, event_id, cause) is not None


def fire_event(orch: Orchestration, event_id: str, cause: uuid.UUID) -> list[str] | None:
    """An external event (the broker inbox, ``POST /event/{id}/fire``): None for a missing or INACTIVE event;
    else every ACTIVE event trigger on it fires, once per cause; the ids of those triggers."""
    event = orch.reader.row("event", event_id)
    if event is None or event.data.get("state") != "ACTIVE":
        return None
    matching = trigger_rules.watching_event(orch.triggers("event"), event_id)
    _fire_each(orch, matching, cause, f"event:{event_id}")
    return [t.id for t in matching]


def on_trigger_fired(orch: Orchestration, fired_trigger_id: str, cause: uuid.UUID) -> None:
    """super: ANY fires at once; ALL records the input and fires (then resets) once every input is in."""
    watching = trigger_rules.watching_trigger(orch.triggers("super"), fired_trigger_id)
    parent_depth = fire_depth(orch, cause) if watching else None
    for trigger in watching:

        def attempt(trigger_id: str = trigger.id) -> None:
            current = orch.reader.row("trigger", trigger_id)
            if current is not None and current.data.get("state") == "ACTIVE":
                depth = trigger_graph.chain_depth(parent_depth, trigger_graph.min_interval(current.data) is not None)
                _super_input(orch, current, fired_trigger_id, cause, depth)

        try:
            retry_on_conflict(attempt, what=f"trigger {trigger.id}")
        except StillConflicting:
            log.warning("super trigger %s kept changing: input %s not recorded for %s", trigger.id,
                        fired_trigger_id, cause)


def _super_input(orch: Orchestration, trigger: Any, fired_trigger_id: str, cause: uuid.UUID, depth: int) -> None:
    if trigger_rules.fires_on_any(trigger):
        fire_trigger(orch, trigger, cause, f"input:{fired_trigger_id}", depth=depth)
        return
    if orch.store.read_by_ids([trigger_rules.input_event_id(cause, trigger.id),
                               trigger_rules.skipped_fire_id(cause, trigger.id)]):
        # This input was recorded already; if it completed the trigger, make sure the fire's runs started.
        fired = orch.store.read_by_ids([trigger_rules.fired_event_id(cause, trigger.id)])
        if fired:
            start_fired(orch, trigger.id, "super", fired[0].data["note"]["workflow_ids"], fired[0].event_id,
                        "orchestrator")
        return
    refused = fire_refusal(orch, trigger, depth)  # an input too deep in a chain, or within the interval: dropped
    if refused is not None:
        orch.store.append(trigger_rules.skip_append(trigger, cause, f"input:{fired_trigger_id}", refused))
        log.warning("super trigger %s: input %s not recorded for %s: %s", trigger.id, fired_trigger_id, cause,
                    refused)
        return
    decision = trigger_rules.super_all_input(trigger, fired_trigger_id, cause, datetime.now(UTC).isoformat(),
                                             depth)
    orch.store.append(decision.append)
    if decision.fired is not None:
        start_fired(orch, trigger.id, "super", decision.fired["workflow_ids"],
                    trigger_rules.fired_event_id(cause, trigger.id), "orchestrator")


def fire_manual(orch: Orchestration, workflow_id: str, user_id: str, request_id: uuid.UUID) -> Started:
    """do-manual-trigger: decided inside the request, so the concurrency refusal is exact."""
    return start_instance(orch, workflow_id, Fire("manual", None, 0, user_id, request_id))
