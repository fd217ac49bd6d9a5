"""The next-action choice for a datastore (reference §8.2, docs/decisions.md "Running workflows"): which of its
waiting actions to queue now, and the append that queues them, guarded by the datastore's version so two
deciders cannot both queue on the same state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from events.streams.action import ActionQueued
from events.streams.datastore import DatastoreSlotTaken
from events.types import Metadata, NewEvent, StreamAppend
from services.domain.rows import Row
from services.domain.run_control import waiting_until

# In flight for "one action per workflow": FINISHING too, so the next action never starts before the previous
# one's outcome is known.
IN_FLIGHT = ("QUEUED", "PENDING", "RUNNING", "FINISHING")
CONSUME_ACTION = "consume_subscription"

Action = Mapping[str, Any]  # an action's data with its "id" and "_version"


def consumed_subscription(action: Action) -> str | None:
    """The subscription a consume_subscription action consumes, if it is one."""
    if action.get("action_type_name") != CONSUME_ACTION:
        return None
    subscription_id = (action.get("args") or {}).get("subscription_id")
    return str(subscription_id) if subscription_id else None


def choose_next(actions: Iterable[Action], now: datetime | None = None) -> list[Action]:
    """The actions to queue now: per workflow at most one in flight, and at most one ad-hoc action in flight;
    each the HAS_NEVER_RUN action with the lowest order_idx of its kind. An attempt waiting for its
    ``not_before`` (a retry, services/domain/run_control.py) is not chosen before then, and holds its workflow
    (or the ad-hoc line) as if it were in flight."""
    actions = list(actions)
    now = now or datetime.now(UTC)
    busy_workflows = {a.get("workflow_id") for a in actions if a.get("state") in IN_FLIGHT and a.get("workflow_id")}
    adhoc_busy = any(a.get("state") in IN_FLIGHT and not a.get("workflow_id") for a in actions)
    chosen: list[Action] = []
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
        due = waiting_until(action)
        if due is None or due <= now:
            chosen.append(action)
    return chosen


def one_consumer_per_subscription(chosen: Iterable[Action]) -> list[Action]:
    """At most one consume_subscription action per subscription in one decision: each gets its own batch, so
    a second waits for the next decision (its datastore's next completion) instead of sharing the first's."""
    taken: set[str] = set()
    kept = []
    for action in chosen:
        subscription_id = consumed_subscription(action)
        if subscription_id is not None:
            if subscription_id in taken:
                continue
            taken.add(subscription_id)
        kept.append(action)
    return kept


def to_queue(live: Iterable[Action], now: datetime | None = None) -> list[Action]:
    """TRY_NEXT_ACTION's choice among a datastore's live actions (HAS_NEVER_RUN .. FINISHING)."""
    return one_consumer_per_subscription(choose_next(live, now))


def queue_appends(datastore: Row, chosen: Sequence[Action], now: str, meta: Metadata) -> list[StreamAppend]:
    """Queue ``chosen``: the slot decision on the datastore's stream at the version the choice was made on,
    and each action QUEUED at the version it was read at. Nothing chosen, nothing appended."""
    if not chosen:
        return []
    return [
        StreamAppend(f"datastore-{datastore.id}", datastore.version, [NewEvent(
            DatastoreSlotTaken({"queued": [a["id"] for a in chosen]}), meta)]),
        *(StreamAppend(f"action-{a['id']}", a["_version"], [NewEvent(
            ActionQueued({"state": "QUEUED", "queued_time": now}), meta)]) for a in chosen),
    ]


def live_after(live: Iterable[Action], finished_streams: set[str]) -> list[Action]:
    """The live actions left once a completion that writes to ``finished_streams`` is applied: every action
    stream a completion writes to is finished by it (the action itself, the SKIPPED rest)."""
    return [a for a in live if f"action-{a['id']}" not in finished_streams]


def queueing_clashes(queueing: Iterable[StreamAppend], completion_streams: set[str]) -> bool:
    """Whether queueing writes to a stream the completion writes to too (it deactivates the datastore, or
    settles the subscription the next action consumes): then it cannot go in the completion's append."""
    return any(a.stream_id in completion_streams for a in queueing)
