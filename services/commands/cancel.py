"""Cancel a workflow instance (issue 15): read the instance and its actions, decide with
services/domain/run_control.py, append once. The launcher, following the log, stops the engines of the
cancelled actions (SIGTERM then SIGKILL, or ECS StopTask) and fills the freed slots."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from events.types import Metadata
from services.commands import batches
from services.commands.context import Orchestration
from services.commands.retry import WORKER_CONFLICTS, retry_on_conflict
from services.domain import run_control
from services.domain.errors import BadRequest, NotFound

log = logging.getLogger("dart.cancel")


@dataclass(frozen=True)
class Cancelled:
    instance_id: str
    state: str  # the instance's state now: FAILED
    message: str
    already: bool  # it had been cancelled before: nothing was appended now
    actions: tuple[str, ...] = ()  # the actions this cancel failed


def cancel_instance(orch: Orchestration, instance_id: str, actor: str, reason: str | None = None,
                    cause: uuid.UUID | None = None) -> Cancelled:
    """Cancel a QUEUED or RUNNING instance. Cancelling one that was cancelled already changes nothing
    (idempotent); one that ended otherwise is a BadRequest naming its state. Racing an engine's check-in or
    a completion, exactly one wins: each append is guarded by the versions it read."""
    message = run_control.cancel_message(actor, reason)
    meta = Metadata(actor=actor, causation_id=str(cause) if cause else None)

    def attempt() -> Cancelled:
        instance = orch.reader.row("workflow_instance", instance_id)
        if instance is None:
            raise NotFound("workflow_instance", instance_id)
        refusal = run_control.not_cancellable(instance)
        if refusal is not None:
            if instance.data.get("cancelled_by"):
                return Cancelled(instance.id, str(instance.data.get("state")),
                                 str(instance.data.get("error_message")), True)
            raise BadRequest(refusal)
        actions = orch.actions_of_instance(instance_id)
        settlements: dict[str, Any] = {}
        for action in actions:
            if action.get("state") in run_control.STOPPABLE:
                settled = batches.settlement(orch, action["id"], action, False, None, meta,
                                             f"cancel:{action['id']}")
                if settled is not None:
                    settlements[action["id"]] = settled
        appends = run_control.cancel_appends(instance, actions, message, actor, datetime.now(UTC), meta,
                                             settlements)
        orch.store.append(*appends)
        failed = tuple(a["id"] for a in actions if a.get("state") in run_control.STOPPABLE)
        return Cancelled(instance.id, "FAILED", message, False, failed)

    done = retry_on_conflict(attempt, what=f"workflow instance {instance_id}", conflicts=WORKER_CONFLICTS)
    if not done.already:
        log.info("workflow instance %s %s (%d action(s) stopped)", instance_id, message, len(done.actions))
    return done
