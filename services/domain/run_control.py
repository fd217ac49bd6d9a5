"""Run control's pure rules (issue 15): what a cancel appends, when an action or an instance has run too long,
and an action's retries with Step Functions' semantics (``Retry``: IntervalSeconds, BackoffRate,
MaxDelaySeconds, JitterStrategy FULL).

A cancel is not a completion: it stops the instance (FAILED, "cancelled by <actor>"), fails the actions that
were queued, launched or running and skips the ones that never ran, in ONE append guarded by every version it
read, so a check-in racing it either lands first (and the cancel re-reads) or is refused; no on_failure rule
and no retry follows. A timeout is a failure: the action completes FAILED "timed out after N s" and the
workflow's rules (retries, on_failure) apply as to any failure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from events.streams.action import ActionCancelled, ActionCreated, ActionSkipped
from events.streams.workflow_instance import WorkflowInstanceCancelled
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.domain.rows import Row

Action = Mapping[str, Any]
STOPPABLE = ("QUEUED", "PENDING", "RUNNING", "FINISHING")  # a cancel fails these (their engine is stopped)
LIVE_INSTANCE = ("QUEUED", "RUNNING")
ENGINE_STATES = ("PENDING", "RUNNING", "FINISHING")  # an engine may be running for these


# ----------------------------------------------------------------------------------------------- cancel
def cancel_message(actor: str, reason: str | None = None) -> str:
    return f"cancelled by {actor}" + (f": {reason}" if reason else "")


def cancel_appends(instance: Row, actions: Iterable[Action], message: str, actor: str, end: datetime,
                   meta: Metadata, settlements: Mapping[str, StreamAppend] | None = None) -> list[StreamAppend]:
    """The one append that cancels ``instance`` (as read, with its actions as read): each stream at the version
    it was read at. ``settlements``: by action id, the subscription settlement of a consume_subscription
    action being failed (its elements go back to the pool)."""
    at = end.isoformat()
    appends = [StreamAppend(f"workflow_instance-{instance.id}", instance.version, [NewEvent(
        WorkflowInstanceCancelled({"state": "FAILED", "end_time": at, "error_message": message,
                                   "cancelled_by": actor}), meta)])]
    for action in actions:
        state = action.get("state")
        if state in STOPPABLE:
            appends.append(StreamAppend(f"action-{action['id']}", action["_version"], [NewEvent(
                ActionCancelled({"state": "FAILED", "end_time": at, "error_message": message}), meta)]))
            if settlements and action["id"] in settlements:
                appends.append(settlements[action["id"]])
        elif state == "HAS_NEVER_RUN":
            appends.append(StreamAppend(f"action-{action['id']}", action["_version"], [NewEvent(
                ActionSkipped({"state": "SKIPPED", "error_message": f"its workflow instance was {message}"}),
                meta)]))
    return appends


def not_cancellable(instance: Row) -> str | None:
    """Why the instance cannot be cancelled (None: it can)."""
    state = instance.data.get("state")
    if state in LIVE_INSTANCE:
        return None
    return f"workflow instance {instance.id} is {state}: only a QUEUED or RUNNING instance can be cancelled"


# --------------------------------------------------------------------------------------------- timeouts
def _at(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def action_timeout(action: Action, datastore: Mapping[str, Any] | None) -> int | None:
    """The action's own timeout_seconds, else its datastore's action_timeout_seconds, else none."""
    own = action.get("timeout_seconds")
    if own:
        return int(own)
    default = (datastore or {}).get("action_timeout_seconds")
    return int(default) if default else None


def timed_out(action: Action, datastore: Mapping[str, Any] | None, now: datetime) -> int | None:
    """The timeout a RUNNING action has run past (seconds), or None."""
    limit = action_timeout(action, datastore)
    started = _at(action.get("start_time"))
    if limit is None or started is None:
        return None
    return limit if now - started >= timedelta(seconds=limit) else None


def launch_timed_out(action: Action, datastore: Mapping[str, Any] | None, pending_since: datetime,
                     now: datetime) -> int | None:
    """The datastore's launch_timeout_seconds a PENDING action has waited past, or None."""
    limit = (datastore or {}).get("launch_timeout_seconds")
    if not limit:
        return None
    return int(limit) if now - pending_since >= timedelta(seconds=int(limit)) else None


def instance_timed_out(instance: Mapping[str, Any], workflow: Mapping[str, Any] | None,
                       now: datetime) -> int | None:
    """The workflow's max_runtime_seconds a live instance has run past (counted from its queued_time, the
    moment it was started: a run waiting for its datastore is running late too), or None."""
    limit = (workflow or {}).get("max_runtime_seconds")
    since = _at(instance.get("queued_time"))
    if not limit or since is None:
        return None
    return int(limit) if now - since >= timedelta(seconds=int(limit)) else None


# ---------------------------------------------------------------------------------------------- retries
@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 0
    delay: float = 1.0
    backoff_rate: float = 2.0
    max_delay: float | None = None
    jitter: str = "none"

    @classmethod
    def of(cls, action: Action) -> RetryPolicy:
        def number(name: str, default: float) -> float:
            value = action.get(name)
            return float(value) if value is not None else default

        max_delay = action.get("retry_max_delay_seconds")
        return cls(int(action.get("retries") or 0), number("retry_delay_seconds", 1.0),
                   number("retry_backoff_rate", 2.0), float(max_delay) if max_delay is not None else None,
                   str(action.get("retry_jitter") or "none"))

    def delay_before(self, attempt: int, draw: float) -> float:
        """Seconds before attempt ``attempt`` (2 is the first retry); ``draw`` in [0, 1) is the jitter's."""
        delay = self.delay * self.backoff_rate ** (attempt - 2)
        if self.max_delay is not None:
            delay = min(delay, self.max_delay)
        return delay * draw if self.jitter == "full" else delay


def attempt_of(action: Action) -> int:
    return int(action.get("attempt") or 1)


def retries_left(action: Action, state: str) -> bool:
    """Whether a failure of this attempt is followed by another attempt instead of the failure rules."""
    return state == "FAILED" and attempt_of(action) <= RetryPolicy.of(action).retries


RESET = ("queued_time", "start_time", "end_time", "error_message", "progress", "ecs_task_arn", "extra_data",
         "avg_runtime", "completed_runs", "not_before")


def next_attempt(action: Row, new_id: str, end: datetime, draw: float, meta: Metadata,
                 event_id: Any = None) -> tuple[StreamAppend, datetime]:
    """The next attempt of a failed action: a new action in the same place (instance, order), HAS_NEVER_RUN
    until ``not_before``, numbered and pointing at the first attempt. (append, not_before)."""
    data = dict(action.data)
    attempt = attempt_of(data) + 1
    not_before = end + timedelta(seconds=RetryPolicy.of(data).delay_before(attempt, draw))
    for name in RESET:
        data.pop(name, None)
    data.update(state="HAS_NEVER_RUN", attempt=attempt, retry_of=data.get("retry_of") or action.id,
                not_before=not_before.isoformat())
    return StreamAppend(f"action-{new_id}", ExpectedVersion.NO_STREAM, [NewEvent(ActionCreated(data), meta,
                                                                                   event_id)]), not_before


def waiting_until(action: Action) -> datetime | None:
    return _at(action.get("not_before"))
