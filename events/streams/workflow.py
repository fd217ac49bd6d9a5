"""Events of workflow streams (`workflow-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

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


EVENTS = (WorkflowCreated, WorkflowUpdated, WorkflowDeleted)
