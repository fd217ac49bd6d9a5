"""Batches and consumption (reference §7 subscription_batch, §9.3): reserving a batch when a subscription_batch
trigger is evaluated, assigning a batch to a consume_subscription action when it is queued, and settling the
action's elements when it completes.

Every one of these decisions reads the elements' inline read model and appends to the subscription's stream
with the version read before it, in the same append as the rest of the decision (the trigger's fire, the
action's queueing, the action's completion). Two deciders racing on one subscription cannot both succeed;
the loser re-reads and decides again. So no element is ever in two batches, or assigned or consumed twice.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from events.streams.subscription import (
    SubscriptionBatchReserved,
    SubscriptionElementsAssigned,
    SubscriptionElementsConsumed,
    SubscriptionElementsReleased,
)
from events.types import Metadata, StreamAppend
from projections.reads import TABLES
from services.commands import elements
from services.commands.context import Orchestration, derived_event_id, derived_id, json_field
from services.commands.retry import WORKER_CONFLICTS, StillConflicting, retry_on_conflict
from services.commands.triggers import fire_trigger
from services.domain.next_action import CONSUME_ACTION, consumed_subscription

log = logging.getLogger("dart.subscriptions")
RETRIES = 20


def batch_triggers(orch: Orchestration, subscription_id: str) -> list[Any]:
    return [t for t in orch.triggers("subscription_batch")
            if (t.data.get("args") or {}).get("subscription_id") == subscription_id]


def evaluate(orch: Orchestration, trigger_id: str, cause: uuid.UUID, after_run: bool = False) -> bool:
    """Evaluate one subscription_batch trigger: when the subscription's UNCONSUMED bytes reach the threshold,
    reserve one batch (s3_path order, up to the element that reaches it) and fire, in one append. True when
    it fired. ``after_run``: a run it started (directly or through super triggers) has just completed; a
    reserved batch no run will take is then fired for first."""

    def attempt() -> bool:
        trigger = orch.reader.row("trigger", trigger_id)
        if trigger is None or trigger.data.get("state") != "ACTIVE":
            return False
        if trigger.data.get("trigger_type_name") != "subscription_batch":
            return False
        if orch.store.read_by_ids([derived_event_id(cause, f"fired:{trigger_id}")]):
            fire_trigger(orch, trigger, cause, "")  # evaluated before: only makes sure its runs were started
            return False
        args = trigger.data.get("args") or {}
        subscription_id = str(args.get("subscription_id"))
        subscription = orch.reader.row("subscription", subscription_id)
        if subscription is None or subscription.data.get("state") != "ACTIVE":
            return False
        if not leads_anywhere(orch, trigger):
            return False  # a batch nobody would consume; evaluated again once a workflow or super trigger is set
        if after_run and (
                elements.reserved_batches(orch.store, subscription_id) > _consumers_to_come(orch, subscription_id)):
            # A run finished, and a batch is reserved that no run under way will take: its fire's run was
            # refused (the workflow was busy or inactive). Fire again for it instead of reserving another, so
            # the last batch is not left waiting for new files.
            waiting = elements.oldest_batch(orch.store, subscription_id)
            fire_trigger(orch, trigger, cause, f"batch:{waiting}")
            log.info("trigger %s fired again for waiting batch %s of subscription %s", trigger_id, waiting,
                     subscription_id)
            return True
        chosen = elements.select_batch(orch.store, subscription_id, int(args.get("unconsumed_data_size_in_bytes") or 1))
        if not chosen:
            return False
        batch_id = derived_id(cause, f"batch:{trigger_id}")
        meta = Metadata(actor="orchestrator", causation_id=str(cause))
        prefix = elements.common_prefix(chosen)
        reserved = elements.chunked_events(
            prefix, chosen, lambda p, s: SubscriptionBatchReserved(p, s, trigger_id=trigger_id, batch_id=batch_id), meta,
            lambda i: derived_event_id(cause, f"reserve:{trigger_id}:{i}"))
        fire_trigger(orch, trigger, cause, f"batch:{batch_id}", extra=[
            StreamAppend(f"subscription-{subscription_id}", subscription.version, reserved)])
        log.info("trigger %s reserved batch %s: %d element(s) of subscription %s", trigger_id, batch_id,
                 len(chosen), subscription_id)
        return True

    try:
        return retry_on_conflict(attempt, what=f"trigger {trigger_id}", tries=RETRIES, conflicts=WORKER_CONFLICTS)
    except StillConflicting:
        log.warning("trigger %s: subscription kept changing; not evaluated for %s", trigger_id, cause)
        return False


def _consumers_to_come(orch: Orchestration, subscription_id: str) -> int:
    """consume_subscription actions of the subscription in runs under way that have not been queued yet: each
    will take a reserved batch when it is."""

    table = TABLES["action"]
    waiting = orch.actions_where(table.c.state == "HAS_NEVER_RUN", table.c.workflow_instance_id.is_not(None),
                                 json_field(table, "action_type_name") == CONSUME_ACTION)
    return sum(1 for a in waiting if consumed_subscription(a) == subscription_id)


def leads_anywhere(orch: Orchestration, trigger: Any, seen: set[str] | None = None) -> bool:
    """Whether a fire of ``trigger`` would start a run or feed one: it has workflows, or an ACTIVE super trigger
    on it does (recursively). A batch trigger that leads nowhere reserves nothing: a super trigger created a
    moment after it must not find the first batch already taken by a fire it never saw."""
    seen = set() if seen is None else seen
    if trigger.id in seen:
        return False
    seen.add(trigger.id)
    if trigger.data.get("workflow_ids"):
        return True
    return any(trigger.id in ((s.data.get("args") or {}).get("completed_trigger_ids") or [])
               and leads_anywhere(orch, s, seen) for s in orch.triggers("super"))


def evaluate_for_subscription(orch: Orchestration, subscription_id: str, cause: uuid.UUID) -> None:
    for trigger in batch_triggers(orch, subscription_id):
        evaluate(orch, trigger.id, cause)


def batch_triggers_behind(orch: Orchestration, trigger_id: str | None, seen: set[str] | None = None) -> list[str]:
    """The subscription_batch triggers a trigger stands for: itself, or, for a super trigger, every one found
    through its ``completed_trigger_ids``, recursively (reference §7, when evaluations are sent, 4)."""
    seen = set() if seen is None else seen
    if not trigger_id or trigger_id in seen:
        return []
    seen.add(trigger_id)
    trigger = orch.reader.row("trigger", trigger_id)
    if trigger is None:
        return []
    kind = trigger.data.get("trigger_type_name")
    if kind == "subscription_batch":
        return [trigger_id]
    if kind != "super":
        return []
    found: list[str] = []
    for inner in (trigger.data.get("args") or {}).get("completed_trigger_ids") or []:
        found += batch_triggers_behind(orch, str(inner), seen)
    return found


# ------------------------------------------------------------------------------------- consumption
def _consumed(orch: Orchestration, action: dict[str, Any]) -> Any | None:
    """The subscription a consume_subscription action consumes (its read-model row), if any."""
    subscription_id = consumed_subscription(action)
    return None if subscription_id is None else orch.reader.row("subscription", subscription_id)


def assignment(orch: Orchestration, action_id: str, action: dict[str, Any],
               meta: Metadata) -> StreamAppend | None:
    """What queueing a consume_subscription action appends to its subscription: the oldest reserved batch
    when the subscription has an ACTIVE batch trigger, else every unbatched UNCONSUMED element. None when
    there is nothing to assign (the action still runs, with no elements)."""
    subscription = _consumed(orch, action)
    if subscription is None:
        return None
    subscription_id = subscription.id
    t = elements.ELEMENTS
    mine = t.c.subscription_id == subscription_id
    batch_id: str | None = None
    if batch_triggers(orch, subscription_id):
        batch_id = elements.oldest_batch(orch.store, subscription_id)
        if batch_id is None:
            log.error("action %s: subscription %s has a batch trigger but no reserved batch; it gets no elements",
                      action_id, subscription_id)
            return None
        paths = elements.paths_where(orch.store, mine, t.c.state == "RESERVED", t.c.batch_id == batch_id)
    else:
        paths = elements.paths_where(orch.store, mine, t.c.state == "UNCONSUMED", t.c.batch_id.is_(None))
    if not paths:
        return None
    prefix = elements.common_prefix(paths)
    cause = uuid.UUID(meta.causation_id) if meta.causation_id else None
    events = elements.chunked_events(
        prefix, paths, lambda p, s: SubscriptionElementsAssigned(p, s, action_id=action_id, batch_id=batch_id), meta,
        lambda i: derived_event_id(cause, f"assign:{action_id}:{i}"))
    return StreamAppend(f"subscription-{subscription_id}", subscription.version, events)


def settlement(orch: Orchestration, action_id: str, action: dict[str, Any], succeeded: bool,
               consume_state: str | None, meta: Metadata, tag: str) -> StreamAppend | None:
    """What completing a consume_subscription action appends: its ASSIGNED elements become CONSUMED (success,
    or ``consume_subscription_state`` SUCCESS) or UNCONSUMED again (failure, or FAILURE)."""
    subscription = _consumed(orch, action)
    if subscription is None:
        return None
    subscription_id = subscription.id
    t = elements.ELEMENTS
    paths = elements.paths_where(orch.store, t.c.subscription_id == subscription_id, t.c.action_id == action_id,
                                 t.c.state == "ASSIGNED")
    if not paths:
        return None
    consumed = consume_state == "SUCCESS" if consume_state in ("SUCCESS", "FAILURE") else succeeded
    kind = SubscriptionElementsConsumed if consumed else SubscriptionElementsReleased
    prefix = elements.common_prefix(paths)
    cause = uuid.UUID(meta.causation_id) if meta.causation_id else None
    events = elements.chunked_events(prefix, paths, lambda p, s: kind(p, s, action_id=action_id), meta,
                                     lambda i: derived_event_id(cause, f"{tag}:settle:{i}"))
    return StreamAppend(f"subscription-{subscription_id}", subscription.version, events)
