"""The buffer_one overlap policy (services/domain/schedules.py): a scheduled fire that meets its workflow's
concurrency waits, recorded as ``TriggerFireBuffered``, and its run starts as soon as a run of the workflow
ends (the scheduler wakes on instance ends while one waits: ``start_waiting``).

The trigger's read model keeps the last buffered fire per workflow (``last_buffered``); it is waiting while the
instance its fire derives does not exist. The run it starts is the one the fire would have started at once
(the same ids), so a redelivered fire, a second scheduler or a restart never start it twice.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from events.streams.trigger import TriggerFireBuffered
from events.types import Metadata, NewEvent, StreamAppend
from services.commands.context import Orchestration
from services.commands.retry import StillConflicting, retry_on_conflict
from services.commands.runs import start_instance
from services.domain import run_start, schedules
from services.domain.run_start import Fire

log = logging.getLogger("dart.scheduler")


def buffered_event_id(fired_id: uuid.UUID, workflow_id: str) -> uuid.UUID:
    return uuid.uuid5(fired_id, f"buffered:{workflow_id}")


def entry_fire(trigger_id: str, workflow_id: str, entry: dict[str, Any]) -> Fire:
    """The fire a buffered entry starts: the same cause (so the same instance id) as an immediate start."""
    return Fire("scheduled", trigger_id, 0, str(entry.get("user_id") or "anonymous"),
                uuid.uuid5(uuid.UUID(str(entry["fired_event_id"])), workflow_id), entry.get("scheduled_time"))


def waiting(orch: Orchestration, trigger: Any, workflow_id: str) -> dict[str, Any] | None:
    """The buffered fire of this trigger still waiting for this workflow, or None."""
    entry = ((trigger.data.get("last_buffered") or {}) if trigger is not None else {}).get(workflow_id)
    if not isinstance(entry, dict) or "fired_event_id" not in entry:
        return None
    instance_id = run_start.instance_id_for(workflow_id, entry_fire(trigger.id, workflow_id, entry))
    if instance_id is None or orch.reader.row("workflow_instance", instance_id) is not None:
        return None
    fired_id = uuid.UUID(str(entry["fired_event_id"]))
    if orch.store.read_by_ids([run_start.skipped_event_id(fired_id, workflow_id)]):
        return None
    return entry


def buffer_fire(orch: Orchestration, trigger_id: str, workflow_id: str, fired_id: uuid.UUID, fire: Fire) -> str | None:
    """Buffer a fire refused by the workflow's concurrency; None when buffered, else why it is skipped (a fire is
    already waiting, or the workflow cannot start at all)."""

    def attempt() -> str | None:
        trigger = orch.reader.row("trigger", trigger_id)
        workflow = orch.reader.row("workflow", workflow_id)
        refused = run_start.workflow_refusal(workflow_id, None if workflow is None else workflow.data)
        if trigger is None or refused is not None:
            return refused or f"trigger {trigger_id} does not exist"
        earlier = waiting(orch, trigger, workflow_id)
        if schedules.overlap_outcome("buffer_one", True, earlier is not None) != "buffer":
            return (f"the workflow is at its concurrency and the fire for {(earlier or {}).get('scheduled_time')} "
                    "is already waiting (overlap_policy buffer_one)")
        entry = {"fired_event_id": str(fired_id), "scheduled_time": fire.scheduled_time, "user_id": fire.user_id}
        buffered = {**(trigger.data.get("last_buffered") or {}), workflow_id: entry}
        orch.store.append(StreamAppend(f"trigger-{trigger_id}", trigger.version, [NewEvent(
            TriggerFireBuffered({"last_buffered": buffered}),
            Metadata(actor="orchestrator", causation_id=str(fired_id)), buffered_event_id(fired_id, workflow_id))]))
        log.info("trigger %s: the fire for %s waits for a run of workflow %s to end", trigger_id,
                 fire.scheduled_time, workflow_id)
        return None

    try:
        return retry_on_conflict(attempt, what=f"trigger {trigger_id}")
    except StillConflicting:
        return f"trigger {trigger_id} is changing too fast"


def start_waiting(orch: Orchestration, trigger: Any) -> tuple[list[str], int]:
    """Start the waiting buffered fires of a trigger whose workflows have room now: (instance ids started, how
    many still wait)."""
    started: list[str] = []
    still = 0
    for workflow_id in sorted(trigger.data.get("last_buffered") or {}):
        entry = waiting(orch, trigger, workflow_id)
        if entry is None:
            continue
        result = start_instance(orch, workflow_id, entry_fire(trigger.id, workflow_id, entry))
        if result.instance_id is not None:
            started.append(result.instance_id)
        elif run_start.workflow_refusal(workflow_id, _data(orch, workflow_id)) is not None:
            # The workflow was deactivated or deleted while the fire waited: the fire is skipped, for good.
            fired_id = uuid.UUID(str(entry["fired_event_id"]))
            orch.store.append(run_start.skipped_fire(trigger.id, workflow_id, result.refused or "refused", fired_id))
        else:
            still += 1
    return started, still


def _data(orch: Orchestration, workflow_id: str) -> dict[str, Any] | None:
    row = orch.reader.row("workflow", workflow_id)
    return None if row is None else row.data
