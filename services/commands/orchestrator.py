"""The orchestrator consumer: which event leads to which decision, in one table. Fed at least once by
either delivery adapter; every handler re-reads the read models, so repeats and reordering change nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from events.types import RecordedEvent
from services.commands import batches
from services.commands.actions import complete_action, try_next_actions
from services.commands.context import Orchestration
from services.commands.tracing import handling
from services.commands.triggers import on_instance_completed, on_trigger_fired

log = logging.getLogger("dart.orchestrator")


def _created_data(event: RecordedEvent) -> dict:
    return event.data.get("data") or {}


def _try_next_for_new_action(orch: Orchestration, event: RecordedEvent) -> None:
    data = _created_data(event)
    if data.get("state") == "HAS_NEVER_RUN" and data.get("datastore_id") and not data.get("workflow_instance_id"):
        try_next_actions(orch, data["datastore_id"], event.event_id)


def _try_next_for_instance(orch: Orchestration, event: RecordedEvent) -> None:
    data = _created_data(event)
    if data.get("state") == "QUEUED" and data.get("datastore_id"):
        try_next_actions(orch, data["datastore_id"], event.event_id)


def _try_next_if_activated(orch: Orchestration, event: RecordedEvent) -> None:
    changed = event.data.get("changes") or event.data.get("data") or {}
    if changed.get("state") == "ACTIVE":
        try_next_actions(orch, event.entity_id, event.event_id)


def _complete_checked_in(orch: Orchestration, event: RecordedEvent) -> None:
    # The completion queues the datastore's next action in its own append where it can; where it cannot
    # (see _queue_next_after), the ActionCompleted it appends leads to TRY_NEXT_ACTION one delivery later.
    complete_action(orch, event.entity_id, event.data["result"], event.data.get("error_message"),
                    event.event_id, event.data.get("consume_subscription_state"), queue_next=True)


def _try_next_after_completion(orch: Orchestration, event: RecordedEvent) -> None:
    if orch.take_next_decided(event.entity_id):
        return  # its completion queued the next action already (or found none to queue)
    action = orch.reader.row("action", event.entity_id)
    if action is not None and action.data.get("datastore_id"):
        try_next_actions(orch, action.data["datastore_id"], event.event_id)


def _completion_triggers(orch: Orchestration, event: RecordedEvent) -> None:
    instance = orch.reader.row("workflow_instance", event.entity_id)
    if instance is not None:
        on_instance_completed(orch, instance.data["workflow_id"], instance.id, event.event_id)
        # A run started by a batch (directly or through super triggers) completed: the next batch may be
        # due, which drains a backlog one batch per run (reference §7).
        for trigger_id in batches.batch_triggers_behind(orch, instance.data.get("trigger_id")):
            batches.evaluate(orch, trigger_id, event.event_id, after_run=True)


def _evaluate_new_batch_trigger(orch: Orchestration, event: RecordedEvent) -> None:
    """A batch trigger created or changed (state, args, workflows) is evaluated; so are the batch triggers
    behind a super trigger created or changed, whose batches may now lead somewhere."""
    data = event.data.get("data") or event.data.get("changes") or {}
    row = orch.reader.row("trigger", event.entity_id)
    if row is None or not (event.type == "TriggerCreated" or {"state", "args", "workflow_ids"} & set(data)):
        return
    kind = row.data.get("trigger_type_name")
    if kind == "subscription_batch":
        batches.evaluate(orch, row.id, event.event_id)
    elif kind == "super" and row.data.get("state") == "ACTIVE":
        for trigger_id in batches.batch_triggers_behind(orch, row.id):
            batches.evaluate(orch, trigger_id, event.event_id)


def _evaluate_after_generation(orch: Orchestration, event: RecordedEvent) -> None:
    batches.evaluate_for_subscription(orch, event.entity_id, event.event_id)


def _evaluate_if_reactivated(orch: Orchestration, event: RecordedEvent) -> None:
    if (event.data.get("changes") or {}).get("state") == "ACTIVE":  # INACTIVE -> ACTIVE: the backlog drains again
        batches.evaluate_for_subscription(orch, event.entity_id, event.event_id)


def _evaluate_after_new_files(orch: Orchestration, event: RecordedEvent) -> None:
    if event.data.get("source") != "listing" and event.data.get("elements"):
        batches.evaluate_for_subscription(orch, event.entity_id, event.event_id)


def _super_triggers(orch: Orchestration, event: RecordedEvent) -> None:
    on_trigger_fired(orch, event.entity_id, event.event_id)


HANDLERS: dict[str, Callable[[Orchestration, RecordedEvent], None]] = {
    "ActionCreated": _try_next_for_new_action,
    "WorkflowInstanceCreated": _try_next_for_instance,
    "DatastoreCreated": _try_next_if_activated,
    "DatastoreUpdated": _try_next_if_activated,
    "ActionCheckedIn": _complete_checked_in,
    "ActionCompleted": _try_next_after_completion,
    "WorkflowInstanceCompleted": _completion_triggers,
    "TriggerFired": _super_triggers,
    "TriggerCreated": _evaluate_new_batch_trigger,
    "TriggerUpdated": _evaluate_new_batch_trigger,
    "SubscriptionActivated": _evaluate_after_generation,
    "SubscriptionUpdated": _evaluate_if_reactivated,
    "SubscriptionElementsAdded": _evaluate_after_new_files,
}


class Orchestrator:
    name = "orchestrator"
    types = sorted(HANDLERS)

    def __init__(self, orch: Orchestration) -> None:
        self.orch = orch

    def handle(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            handler = HANDLERS.get(event.type)
            if handler is not None:
                with handling(self.name, event):
                    handler(self.orch, event)
