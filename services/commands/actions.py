"""Moving actions along (reference §8.2, §8.4): choosing which action of a datastore runs next, and
completing an action once its engine checked in (or its task was lost).

Every choice on a datastore appends ``DatastoreSlotTaken`` to the datastore's stream with the version read
before deciding, so two orchestrators deciding at once cannot both queue: one retries on fresh state.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from events.errors import ConcurrencyError, IdempotencyConflict
from events.streams.action import ActionCompleted, ActionQueued, ActionSkipped, ActionStatsUpdated
from events.streams.datastore import DatastoreDeactivated, DatastoreSlotTaken
from events.streams.workflow import WorkflowDeactivated, WorkflowStatsUpdated
from events.streams.workflow_instance import WorkflowInstanceCompleted, WorkflowInstanceFailed
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.commands import batches
from services.commands.context import Orchestration, derived_event_id
from services.commands.runs import Fire, start_instance

IN_FLIGHT = ("QUEUED", "PENDING", "RUNNING", "FINISHING")
DONE = ("COMPLETED", "FAILED", "SKIPPED")
ACTOR = Metadata(actor="orchestrator")


def _now() -> datetime:
    return datetime.now(UTC)


def _meta(cause: uuid.UUID | None) -> Metadata:
    return Metadata(actor="orchestrator", causation_id=str(cause) if cause else None)


def choose_next(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The actions to queue now: per workflow at most one in flight, and at most one ad-hoc action in flight;
    each the HAS_NEVER_RUN action with the lowest order_idx of its kind. Pure."""
    busy_workflows = {a.get("workflow_id") for a in actions if a.get("state") in IN_FLIGHT and a.get("workflow_id")}
    adhoc_busy = any(a.get("state") in IN_FLIGHT and not a.get("workflow_id") for a in actions)
    chosen: list[dict[str, Any]] = []
    waiting = sorted((a for a in actions if a.get("state") == "HAS_NEVER_RUN"),
                     key=lambda a: (float(a.get("order_idx") or 0), a["id"]))
    for action in waiting:
        workflow_id = action.get("workflow_id")
        if workflow_id:
            if workflow_id in busy_workflows:
                continue
            busy_workflows.add(workflow_id)
        else:
            if adhoc_busy:
                continue
            adhoc_busy = True
        chosen.append(action)
    return chosen


def try_next_actions(orch: Orchestration, datastore_id: str, cause: uuid.UUID | None = None) -> list[str]:
    """TRY_NEXT_ACTION: queue what may run next on a datastore; returns the queued action ids."""
    for _ in range(10):
        datastore = orch.reader.row("datastore", datastore_id)
        if datastore is None:
            return []
        chosen, appends = _queue_next(orch, datastore, orch.actions_of_datastore(datastore_id), cause)
        if not chosen:
            return []
        try:
            orch.store.append(*appends)
        except (ConcurrencyError, IdempotencyConflict):
            continue
        return chosen
    return []


def _queue_next(orch: Orchestration, datastore: Any, actions: list[dict[str, Any]],
                cause: uuid.UUID | None) -> tuple[list[str], list[StreamAppend]]:
    """The appends that queue what may run next among ``actions`` (the datastore's live ones), guarded by the
    datastore's version: (queued ids, appends); nothing to queue gives ([], [])."""
    chosen = _one_consumer_per_subscription(choose_next(actions))
    if not chosen:
        return [], []
    now = _now().isoformat()
    appends = [StreamAppend(f"datastore-{datastore.id}", datastore.version, [NewEvent(
        DatastoreSlotTaken({"queued": [a["id"] for a in chosen]}), _meta(cause))])]
    appends += [StreamAppend(f"action-{a['id']}", a["_version"], [NewEvent(
        ActionQueued({"state": "QUEUED", "queued_time": now}), _meta(cause))]) for a in chosen]
    for action in chosen:  # a consume_subscription action gets its elements as it is queued (§9.3)
        assigned = batches.assignment(orch, action["id"], action, _meta(cause))
        if assigned is not None:
            appends.append(assigned)
    return [a["id"] for a in chosen], appends


def _queue_next_after(orch: Orchestration, action: dict[str, Any], completion: list[StreamAppend],
                      cause: uuid.UUID | None) -> list[StreamAppend] | None:
    """What the completion of ``action`` lets run next on its datastore, to go in the completion's own append:
    the next action is queued the moment the last one finishes, not one delivery later. Every action stream
    the completion writes to is finished by it (the action itself, the SKIPPED rest), so those are left out of
    the choice. Nothing when the completion itself writes to a stream the queueing would (it deactivates the
    datastore, or settles the subscription the next action consumes): the separate TRY_NEXT_ACTION that
    follows every completion decides then. Returns None when it could not decide."""
    datastore_id = action.get("datastore_id")
    if not datastore_id:
        return []
    datastore = orch.reader.row("datastore", str(datastore_id))
    if datastore is None:
        return []
    touched = {a.stream_id for a in completion}
    live = [a for a in orch.actions_of_datastore(datastore.id) if f"action-{a['id']}" not in touched]
    _, appends = _queue_next(orch, datastore, live, cause)
    if any(a.stream_id in touched for a in appends):
        return None
    return appends


def _one_consumer_per_subscription(chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most one consume_subscription action per subscription in one decision: each gets its own batch, so
    a second waits for the next decision (its datastore's next completion) instead of sharing the first's."""
    taken: set[str] = set()
    kept = []
    for action in chosen:
        subscription_id = batches.consumed_subscription(action)
        if subscription_id is not None:
            if subscription_id in taken:
                continue
            taken.add(subscription_id)
        kept.append(action)
    return kept


def _runtime(action: dict[str, Any], end: datetime) -> timedelta:
    try:
        return end - datetime.fromisoformat(action["start_time"])
    except (KeyError, TypeError, ValueError):
        return timedelta(0)


def format_timedelta(value: timedelta) -> str:
    return str(value)  # the original's format: "H:MM:SS[.ffffff]" or "N days, H:MM:SS"


def parse_timedelta(text: str | None) -> timedelta:
    if not text:
        return timedelta(0)
    days = 0
    if "day" in text:
        head, _, text = text.partition(", ")
        days = int(head.split()[0])
    hours, minutes, seconds = text.split(":")
    return timedelta(days=days, hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def complete_action(orch: Orchestration, action_id: str, state: str, error_message: str | None,
                    cause: uuid.UUID | None, consume_state: str | None = None, queue_next: bool = False) -> bool:
    """COMPLETE_ACTION: finish an action and everything that follows from it. False if it was already done.
    ``consume_state`` is the engine's ``consume_subscription_state``, if it gave one. ``queue_next``: queue
    the datastore's next action in the same append (first try only: a busy datastore whose version keeps
    moving must not hold the completion back)."""
    for attempt in range(10):
        row = orch.reader.row("action", action_id)
        if row is None or row.data.get("state") in DONE:
            return False
        try:
            _complete(orch, action_id, row.version, row.data, state, error_message, cause, attempt, consume_state,
                      queue_next and attempt == 0)
        except (ConcurrencyError, IdempotencyConflict):
            continue
        return True
    raise RuntimeError(f"action {action_id} kept changing; its completion is tried again")


def _complete(orch: Orchestration, action_id: str, version: int, action: dict[str, Any], state: str,
              error_message: str | None, cause: uuid.UUID | None, attempt: int,
              consume_state: str | None = None, queue_next: bool = False) -> None:
    end = _now()
    meta = _meta(cause)
    tag = f"complete:{action_id}:{attempt}"
    changes: dict[str, Any] = {"state": state, "end_time": end.isoformat()}
    if state == "COMPLETED":
        changes["progress"] = 1
    if error_message is not None:
        changes["error_message"] = error_message
    appends = [StreamAppend(f"action-{action_id}", version, [NewEvent(ActionCompleted(changes), meta,
                                                                      derived_event_id(cause, tag))])]
    settled = batches.settlement(orch, action_id, action, state == "COMPLETED", consume_state, meta, tag)
    if settled is not None:
        appends.append(settled)
    template_id = action.get("workflow_action_id")
    if state == "COMPLETED" and template_id:
        template = orch.reader.row("action", template_id)
        if template is not None:
            runs = int(template.data.get("completed_runs") or 0)
            mean = parse_timedelta(template.data.get("avg_runtime"))
            new_mean = (mean * runs + _runtime(action, end)) / (runs + 1)
            appends.append(StreamAppend(f"action-{template_id}", template.version, [NewEvent(ActionStatsUpdated(
                {"avg_runtime": format_timedelta(new_mean), "completed_runs": runs + 1}), meta)]))
    instance_id = action.get("workflow_instance_id")
    on_failure = action.get("on_failure") or "DEACTIVATE"
    retry: tuple[str, int] | None = None
    if instance_id:
        instance = orch.reader.row("workflow_instance", instance_id)
        workflow = orch.reader.row("workflow", str(action.get("workflow_id")))
        finishes = action.get("last_in_workflow") and (state == "COMPLETED" or on_failure == "CONTINUE")
        if instance is not None and instance.data.get("state") in ("QUEUED", "RUNNING"):
            if state == "FAILED" and on_failure in ("DEACTIVATE", "HALT"):
                reason = error_message or action.get("error_message") or "an action failed"
                appends.append(StreamAppend(f"workflow_instance-{instance_id}", instance.version, [NewEvent(
                    WorkflowInstanceFailed({"state": "FAILED", "end_time": end.isoformat(),
                                            "error_message": f"action {action_id} failed: {reason}"}), meta)]))
                appends += _skip_rest(orch, instance_id, action_id, meta)
                if workflow is not None:
                    retry_num = int(instance.data.get("retry_num") or 0)
                    if retry_num < int(workflow.data.get("retries_on_failure") or 0):
                        retry = (workflow.id, retry_num + 1)
                    elif on_failure == "DEACTIVATE":
                        appends += _deactivate_workflow(orch, workflow, instance.data, meta)
            elif finishes:
                appends.append(StreamAppend(f"workflow_instance-{instance_id}", instance.version, [NewEvent(
                    WorkflowInstanceCompleted({"state": "COMPLETED", "end_time": end.isoformat()}), meta)]))
                if workflow is not None:
                    total = sum((parse_timedelta(t.get("avg_runtime")) for _, t in
                                 orch.template_actions(workflow.id)), timedelta(0))
                    appends.append(StreamAppend(f"workflow-{workflow.id}", ExpectedVersion.ANY, [NewEvent(
                        WorkflowStatsUpdated({"avg_runtime": format_timedelta(total)}), meta)]))
    elif state == "FAILED" and on_failure == "DEACTIVATE":
        appends += _deactivate_datastore(orch, str(action.get("datastore_id")), meta)
    decided = None
    if queue_next:
        decided = _queue_next_after(orch, action, appends, cause)
        appends += decided or []
    orch.store.append(*appends)
    if decided is not None:
        orch.next_decided(action_id)
    if retry is not None:
        start_instance(orch, retry[0], Fire("retry", None, retry[1], "orchestrator",
                                            derived_event_id(cause, f"retry:{action_id}")))


def _skip_rest(orch: Orchestration, instance_id: str, failed_id: str, meta: Metadata) -> list[StreamAppend]:
    message = f"A prior action (id={failed_id}) in this workflow instance failed"
    return [
        StreamAppend(f"action-{a['id']}", a["_version"], [NewEvent(
            ActionSkipped({"state": "SKIPPED", "error_message": message}), meta)])
        for a in orch.actions_of_instance(instance_id) if a.get("state") == "HAS_NEVER_RUN"
    ]


def _deactivate_workflow(orch: Orchestration, workflow: Any, instance: dict[str, Any],
                         meta: Metadata) -> list[StreamAppend]:
    appends = []
    if workflow.data.get("state") == "ACTIVE":
        appends.append(StreamAppend(f"workflow-{workflow.id}", ExpectedVersion.ANY, [NewEvent(
            WorkflowDeactivated({"state": "INACTIVE"}), meta)]))
    if (workflow.data.get("on_failure") or "DEACTIVATE") == "DEACTIVATE":
        appends += _deactivate_datastore(orch, str(instance.get("datastore_id")), meta)
    return appends


def _deactivate_datastore(orch: Orchestration, datastore_id: str, meta: Metadata) -> list[StreamAppend]:
    row = orch.reader.row("datastore", datastore_id)
    if row is None or row.data.get("state") != "ACTIVE":
        return []
    return [StreamAppend(f"datastore-{datastore_id}", ExpectedVersion.ANY, [NewEvent(
        DatastoreDeactivated({"state": "INACTIVE"}), meta)])]
