"""Moving actions along (reference §8.2, §8.4): queueing what may run next on a datastore, and completing an
action once its engine checked in (or its task was lost). Each reads the read models, decides with
services/domain (next_action.py, completion.py) and appends.

Every choice on a datastore appends ``DatastoreSlotTaken`` to the datastore's stream with the version read
before deciding, so two orchestrators deciding at once cannot both queue: one retries on fresh state.

With a launcher in this process (``Orchestration.launcher``: the embedded mode's local engines), the queueing
also takes the slots it leaves free, in the same append and under the same datastore version (the launcher's
own rule, services/domain/slots.py), and hands the actions now PENDING to that launcher: one write and one
thread hop fewer between an action's end and the next one's engine (issue 16).
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from events.types import Metadata, StreamAppend
from services.commands import batches
from services.commands.context import Orchestration, derived_event_id
from services.commands.launch_intent import launch_intent
from services.commands.retry import WORKER_CONFLICTS, StillConflicting, retry_on_conflict
from services.commands.runs import Fire, start_instance
from services.domain import completion, next_action, slots
from services.domain.completion import DONE, CompletionFacts
from services.domain.ids import derived_id


def _now() -> datetime:
    return datetime.now(UTC)


def _meta(cause: uuid.UUID | None) -> Metadata:
    return Metadata(actor="orchestrator", causation_id=str(cause) if cause else None)


def try_next_actions(orch: Orchestration, datastore_id: str, cause: uuid.UUID | None = None) -> list[str]:
    """TRY_NEXT_ACTION: queue what may run next on a datastore; returns the queued action ids."""

    def attempt() -> list[str]:
        datastore = orch.reader.row("datastore", datastore_id)
        if datastore is None:
            return []
        chosen, appends, pending = _queue_next(orch, datastore, orch.actions_of_datastore(datastore_id), cause)
        if chosen:
            orch.store.append(*appends)
            orch.launch_pending(pending, datastore.data)
        return chosen

    try:
        return retry_on_conflict(attempt, what=f"datastore {datastore_id}", conflicts=WORKER_CONFLICTS)
    except StillConflicting:
        return []


def _queue_next(orch: Orchestration, datastore: Any, live: Sequence[Mapping[str, Any]],
                cause: uuid.UUID | None) -> tuple[list[str], list[StreamAppend], list[dict[str, Any]]]:
    """The appends that queue what may run next among ``live`` (the datastore's live actions), guarded by the
    datastore's version: (queued ids, appends, the actions they also move to PENDING for this process's
    launcher); nothing to queue gives ([], [], [])."""
    chosen = next_action.to_queue(live, _now())
    if not chosen:
        return [], [], []
    now = _now().isoformat()
    appends = next_action.queue_appends(datastore, chosen, now, _meta(cause))
    for action in chosen:  # a consume_subscription action gets its elements as it is queued (§9.3)
        assigned = batches.assignment(orch, action["id"], dict(action), _meta(cause))
        if assigned is not None:
            appends.append(assigned)
    pending = _take_slots_too(orch, datastore, live, chosen, now, appends, cause)
    return [a["id"] for a in chosen], appends, pending


def _take_slots_too(orch: Orchestration, datastore: Any, live: Sequence[Mapping[str, Any]],
                    chosen: Sequence[Mapping[str, Any]], now: str, appends: list[StreamAppend],
                    cause: uuid.UUID | None) -> list[dict[str, Any]]:
    """With a launcher in this process, add to ``appends`` the launch intent its slot-taking would append
    next, decided on the state the queueing leaves, and return those actions as its slot-taking returns them."""
    launcher = orch.launcher
    if launcher is None:
        return []
    queued = {a["id"] for a in chosen}
    after = [{**a, "state": "QUEUED", "queued_time": now, "_version": a["_version"] + 1} if a["id"] in queued
             else a for a in live]
    taken = slots.slots_to_take(datastore.data, after)
    if not taken:
        return []
    meta = Metadata(actor="launcher", causation_id=str(cause) if cause else None)
    intent, pending = launch_intent(datastore.id, datastore.version, taken, meta, launcher.mints_keys)
    appends[:] = _joined([*appends, *intent])
    return pending


def _joined(appends: Sequence[StreamAppend]) -> list[StreamAppend]:
    """One part per stream: a later part's events go after the first part's, under the first's expected
    version (the queueing's, read before the events this append puts in front of them)."""
    parts: dict[str, StreamAppend] = {}
    for part in appends:
        first = parts.get(part.stream_id)
        parts[part.stream_id] = part if first is None else StreamAppend(
            part.stream_id, first.expected_version, [*first.events, *part.events])
    return list(parts.values())


def _queue_next_after(orch: Orchestration, action: dict[str, Any], completion_appends: list[StreamAppend],
                      cause: uuid.UUID | None) -> tuple[list[StreamAppend], list[dict[str, Any]], Any] | None:
    """What the completion of ``action`` lets run next on its datastore, to go in the completion's own append:
    the next action is queued the moment the last one finishes, not one delivery later. Nothing when the
    completion itself writes to a stream the queueing would: the separate TRY_NEXT_ACTION that follows every
    completion decides then. Returns (appends, the actions they move to PENDING, the datastore's data), or
    None when it could not decide."""
    datastore_id = action.get("datastore_id")
    if not datastore_id:
        return [], [], None
    datastore = orch.reader.row("datastore", str(datastore_id))
    if datastore is None:
        return [], [], None
    touched = {a.stream_id for a in completion_appends}
    live = next_action.live_after(orch.actions_of_datastore(datastore.id), touched)
    _, appends, pending = _queue_next(orch, datastore, live, cause)
    if next_action.queueing_clashes(appends, touched):
        return None
    return appends, pending, datastore.data


def complete_action(orch: Orchestration, action_id: str, state: str, error_message: str | None,
                    cause: uuid.UUID | None, consume_state: str | None = None, queue_next: bool = False) -> bool:
    """COMPLETE_ACTION: finish an action and everything that follows from it. False if it was already done.
    ``consume_state`` is the engine's ``consume_subscription_state``, if it gave one. ``queue_next``: queue
    the datastore's next action in the same append (first try only: a busy datastore whose version keeps
    moving must not hold the completion back)."""
    tries = itertools.count()

    def attempt() -> bool:
        number = next(tries)
        row = orch.reader.row("action", action_id)
        if row is None or row.data.get("state") in DONE:
            return False
        complete_read(orch, row, state, error_message, cause, number, consume_state, queue_next and number == 0)
        return True

    try:
        return retry_on_conflict(attempt, what=f"action {action_id}", conflicts=WORKER_CONFLICTS)
    except StillConflicting:
        raise RuntimeError(f"action {action_id} kept changing; its completion is tried again") from None


def complete_read(orch: Orchestration, row: Any, state: str, error_message: str | None,
                  cause: uuid.UUID | None, attempt: int, consume_state: str | None = None,
                  queue_next: bool = False) -> None:
    """Complete the action ``row`` (as just read: the append is guarded by its version), once: read what the
    completion plan needs, decide, append; then start the retry run it calls for. ``attempt`` numbers the
    try, which the completion's event id derives from."""
    action: dict[str, Any] = row.data
    end = _now()
    meta = _meta(cause)
    tag = f"complete:{row.id}:{attempt}"
    settled = batches.settlement(orch, row.id, action, state == "COMPLETED", consume_state, meta, tag)
    template_id = action.get("workflow_action_id")
    template = orch.reader.row("action", template_id) if state == "COMPLETED" and template_id else None
    instance = workflow = None
    waiting: list[dict[str, Any]] = []
    averages: dict[str, str | None] = {}
    instance_id = action.get("workflow_instance_id")
    if instance_id:
        instance = orch.reader.row("workflow_instance", instance_id)
        workflow = orch.reader.row("workflow", str(action.get("workflow_id")))
        if instance is not None and instance.data.get("state") in completion.LIVE_INSTANCE:
            if completion.fails_instance(action, state):
                waiting = [a for a in orch.actions_of_instance(instance_id) if a.get("state") == "HAS_NEVER_RUN"]
            elif completion.finishes_instance(action, state) and workflow is not None:
                averages = {i: t.get("avg_runtime") for i, t in orch.template_actions(workflow.id)}
    target = completion.datastore_to_deactivate(action, state, instance, workflow)
    facts = CompletionFacts(row, state, error_message, end, template, instance, workflow, waiting, averages,
                            orch.reader.row("datastore", target) if target else None,
                            derived_id(cause, f"attempt:{row.id}:{attempt}"), random.random())
    plan = completion.plan_completion(facts, meta, cause, tag, settled)
    appends = plan.appends
    decided = None
    # A next attempt is not in the read models yet: the datastore's next choice waits for it (it holds its
    # workflow until its not_before), so nothing is queued in this append.
    if queue_next and plan.attempt is None:
        decided = _queue_next_after(orch, action, appends, cause)
        appends = [*appends, *(decided[0] if decided else [])]
    orch.store.append(*appends)
    if decided is not None:
        orch.next_decided(row.id)
        orch.launch_pending(decided[1], decided[2])
    if plan.retry is not None:
        # A retried scheduled run (a backfill's, say) is still for its own time: its tokens name that day.
        scheduled = instance.data.get("scheduled_time") if instance is not None else None
        start_instance(orch, plan.retry[0], Fire("retry", None, plan.retry[1], "orchestrator",
                                                 derived_event_id(cause, f"retry:{row.id}"), scheduled))
