"""Events of action (template and instance) streams (`action-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated, State
from events.types import Event

CATEGORY = "action"


@dataclass(frozen=True)
class ActionCreated(EntityCreated):
    type_name = "ActionCreated"
    category = CATEGORY


@dataclass(frozen=True)
class ActionUpdated(EntityUpdated):
    type_name = "ActionUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class ActionDeleted(EntityDeleted):
    type_name = "ActionDeleted"
    category = CATEGORY


@dataclass(frozen=True)
class ActionCheckedOut(Event):
    """An engine took the action: PENDING -> RUNNING."""

    type_name = "ActionCheckedOut"
    category = CATEGORY
    start_time: str

    def evolve(self, state: State) -> State:
        return None if state is None else {**state, "state": "RUNNING", "start_time": self.start_time}


@dataclass(frozen=True)
class ActionCheckedIn(Event):
    """The engine reported its result: RUNNING -> FINISHING; the orchestrator completes the action."""

    type_name = "ActionCheckedIn"
    category = CATEGORY
    result: str  # COMPLETED or FAILED
    error_message: str | None = None
    consume_subscription_state: str | None = None

    def evolve(self, state: State) -> State:
        if state is None:
            return None
        changed = {**state, "state": "FINISHING"}
        if self.result == "FAILED" and self.error_message is not None:
            changed["error_message"] = self.error_message
        return changed


@dataclass(frozen=True)
class ActionQueued(EntityUpdated):
    """Chosen to run next on its datastore: HAS_NEVER_RUN -> QUEUED."""

    type_name = "ActionQueued"
    category = CATEGORY


@dataclass(frozen=True)
class ActionPending(EntityUpdated):
    """Given a datastore slot and about to be launched: QUEUED -> PENDING (the launch intent)."""

    type_name = "ActionPending"
    category = CATEGORY


@dataclass(frozen=True)
class ActionLaunched(EntityUpdated):
    """Its engine task started: ecs_task_arn is the task ARN, or empty for a local process."""

    type_name = "ActionLaunched"
    category = CATEGORY


@dataclass(frozen=True)
class ActionRequeued(EntityUpdated):
    """Back to QUEUED: a stale PENDING with no task, or no capacity to launch."""

    type_name = "ActionRequeued"
    category = CATEGORY


@dataclass(frozen=True)
class ActionCompleted(EntityUpdated):
    """Finished: COMPLETED or FAILED (from FINISHING, or from PENDING/RUNNING when its task was lost)."""

    type_name = "ActionCompleted"
    category = CATEGORY


@dataclass(frozen=True)
class ActionSkipped(EntityUpdated):
    """Will never run: an earlier action of its instance failed."""

    type_name = "ActionSkipped"
    category = CATEGORY


@dataclass(frozen=True)
class ActionStatsUpdated(EntityUpdated):
    """A TEMPLATE action's running mean (avg_runtime) and completed_runs moved."""

    type_name = "ActionStatsUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class ActionCancelled(EntityUpdated):
    """Stopped by an operator's cancel of its instance (or its instance running past max_runtime_seconds):
    -> FAILED with "cancelled by <actor>". Not a completion: no on_failure rule, no retry follows; its engine,
    if one runs, is stopped by the launcher."""

    type_name = "ActionCancelled"
    category = CATEGORY


EVENTS = (
    ActionCreated,
    ActionUpdated,
    ActionDeleted,
    ActionCheckedOut,
    ActionCheckedIn,
    ActionQueued,
    ActionPending,
    ActionLaunched,
    ActionRequeued,
    ActionCompleted,
    ActionSkipped,
    ActionStatsUpdated,
    ActionCancelled,
)
