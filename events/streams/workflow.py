"""Events of workflow streams (`workflow-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityNoted, EntityUpdated

CATEGORY = "workflow"


@dataclass(frozen=True)
class WorkflowCreated(EntityCreated):
    type_name = "WorkflowCreated"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowUpdated(EntityUpdated):
    type_name = "WorkflowUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowDeleted(EntityDeleted):
    type_name = "WorkflowDeleted"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowTriggered(EntityNoted):
    """A trigger started an instance; guards the concurrency decision."""

    type_name = "WorkflowTriggered"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowDeactivated(EntityUpdated):
    """Its last retry failed: ACTIVE -> INACTIVE."""

    type_name = "WorkflowDeactivated"
    category = CATEGORY


@dataclass(frozen=True)
class WorkflowStatsUpdated(EntityUpdated):
    """avg_runtime refreshed after an instance completed."""

    type_name = "WorkflowStatsUpdated"
    category = CATEGORY


EVENTS = (
    WorkflowCreated,
    WorkflowUpdated,
    WorkflowDeleted,
    WorkflowTriggered,
    WorkflowDeactivated,
    WorkflowStatsUpdated,
)
