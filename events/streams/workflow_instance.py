"""Events of workflow instance streams (`workflow_instance-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

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


EVENTS = (WorkflowInstanceCreated, WorkflowInstanceUpdated, WorkflowInstanceDeleted)
