"""Firing triggers (reference §7): workflow_completion, event, scheduled and super (ALL/ANY, nested). The
matching and the super rule are in services/domain/trigger_rules.py.

A fire is ``TriggerFired`` on the trigger's stream, with an event id derived from what caused it, so the
same cause (a redelivered event, a scheduled time seen by two schedulers) fires a trigger once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from events.types import StreamAppend
from services.commands.context import Orchestration
from services.commands.retry import StillConflicting, retry_on_conflict
from services.commands.runs import Fire, Started, record_skipped_fire, skipped_event_id, start_instance
from services.domain import trigger_rules

log = logging.getLogger("dart.orchestrator")


def fire_trigger(orch: Orchestration, trigger: Any, cause: uuid.UUID, key: str, user_id: str = "anonymous",
                 extra: list[StreamAppend] | None = None) -> bool:
    """Record the fire and start each of its workflows; False when this cause already fired it."""
    fired_id = trigger_rules.fired_event_id(cause, trigger.id)
    kind = trigger.data.get("trigger_type_name", "?")
    earlier = orch.store.read_by_ids([fired_id])
    if earlier:  # fired before; a crash may have come before its runs were started: finish that (idempotent)
        start_fired(orch, trigger.id, kind, earlier[0].data["note"]["workflow_ids"], fired_id, user_id)
        return False
    orch.store.append(trigger_rules.fire_append(trigger, cause, key), *(extra or []))
    start_fired(orch, trigger.id, kind, trigger_rules.fire_note(trigger, key)["workflow_ids"], fired_id, user_id)
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

        def attempt(trigger: Any = trigger) -> bool:
            return fire_trigger(orch, orch.reader.row("trigger", trigger.id) or trigger, cause, key)

        try:
            retry_on_conflict(attempt, what=f"trigger {trigger.id}")
        except StillConflicting:
            log.warning("trigger %s kept changing: not fired for %s", trigger.id, cause)


def on_instance_completed(orch: Orchestration, workflow_id: str, instance_id: str, cause: uuid.UUID) -> None:
    """workflow_completion: every ACTIVE trigger watching this workflow fires (never on FAILED)."""
    matching = trigger_rules.watching_workflow(orch.triggers("workflow_completion"), workflow_id)
    _fire_each(orch, matching, cause, f"instance:{instance_id}")


def on_external_event(orch: Orchestration, event_id: str, cause: uuid.UUID) -> bool:
    """event: nothing happens for a missing or INACTIVE event; else every ACTIVE trigger on it fires."""
    event = orch.reader.row("event", event_id)
    if event is None or event.data.get("state") != "ACTIVE":
        return False
    _fire_each(orch, trigger_rules.watching_event(orch.triggers("event"), event_id), cause, f"event:{event_id}")
    return True


def on_trigger_fired(orch: Orchestration, fired_trigger_id: str, cause: uuid.UUID) -> None:
    """super: ANY fires at once; ALL records the input and fires (then resets) once every input is in."""
    for trigger in trigger_rules.watching_trigger(orch.triggers("super"), fired_trigger_id):

        def attempt(trigger_id: str = trigger.id) -> None:
            current = orch.reader.row("trigger", trigger_id)
            if current is not None and current.data.get("state") == "ACTIVE":
                _super_input(orch, current, fired_trigger_id, cause)

        try:
            retry_on_conflict(attempt, what=f"trigger {trigger.id}")
        except StillConflicting:
            log.warning("super trigger %s kept changing: input %s not recorded for %s", trigger.id,
                        fired_trigger_id, cause)


def _super_input(orch: Orchestration, trigger: Any, fired_trigger_id: str, cause: uuid.UUID) -> None:
    if trigger_rules.fires_on_any(trigger):
        fire_trigger(orch, trigger, cause, f"input:{fired_trigger_id}")
        return
    if orch.store.read_by_ids([trigger_rules.input_event_id(cause, trigger.id)]):
        # This input was recorded already; if it completed the trigger, make sure the fire's runs started.
        fired = orch.store.read_by_ids([trigger_rules.fired_event_id(cause, trigger.id)])
        if fired:
            start_fired(orch, trigger.id, "super", fired[0].data["note"]["workflow_ids"], fired[0].event_id,
                        "orchestrator")
        return
    decision = trigger_rules.super_all_input(trigger, fired_trigger_id, cause, datetime.now(UTC).isoformat())
    orch.store.append(decision.append)
    if decision.fired is not None:
        start_fired(orch, trigger.id, "super", decision.fired["workflow_ids"],
                    trigger_rules.fired_event_id(cause, trigger.id), "orchestrator")


def fire_manual(orch: Orchestration, workflow_id: str, user_id: str, request_id: uuid.UUID) -> Started:
    """do-manual-trigger: decided inside the request, so the concurrency refusal is exact."""
    return start_instance(orch, workflow_id, Fire("manual", None, 0, user_id, request_id))
