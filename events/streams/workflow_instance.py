"""Events of workflow instance streams (`workflow_instance-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated, State
from events.types import Event

CATEGORY = "workflow_instance"


@dataclass(frozen=True)
class WorkflowInstanceCreated(EntityCreated):
    type_name = "WorkflowInstanceCreated"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowInstanceUpdated(EntityUpdated):
    type_name = "WorkflowInstanceUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowInstanceDeleted(EntityDeleted):
    type_name = "WorkflowInstanceDeleted"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowInstanceStarted(Event):
    """Its first action was checked out: QUEUED -> RUNNING."""

    type_name = "WorkflowInstanceStarted"
    category = CATEGORY
    start_time: str

    def evolve(self, state: State) -> State:
        return None if state is None else {**state, "state": "RUNNING", "start_time": self.start_time}


@dataclass(frozen=True)
class WorkflowInstanceCompleted(EntityUpdated):
    """RUNNING -> COMPLETED."""

    type_name = "WorkflowInstanceCompleted"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowInstanceFailed(EntityUpdated):
    """QUEUED or RUNNING -> FAILED, with error_message."""

    type_name = "WorkflowInstanceFailed"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowInstanceCancelled(EntityUpdated):
    """QUEUED or RUNNING -> FAILED by a cancel: error_message "cancelled by <actor>", cancelled_by."""

    type_name = "WorkflowInstanceCancelled"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowInstanceLate(Event):
    """Still live ``sla_seconds`` after it was queued (its workflow's SLA): the "running late" mail is sent for
    this event, so once per instance whatever restarts (issue 15)."""

    type_name = "WorkflowInstanceLate"
    category = CATEGORY
    sla_seconds: int
    late_time: str

    def evolve(self, state: State) -> State:
        return None if state is None else {**state, "sla_missed_time": self.late_time}


EVENTS = (
    WorkflowInstanceCreated,
    WorkflowInstanceUpdated,
    WorkflowInstanceDeleted,
    WorkflowInstanceStarted,
    WorkflowInstanceCompleted,
    WorkflowInstanceFailed,
    WorkflowInstanceCancelled,
    WorkflowInstanceLate,
)
