"""Events of action (template and instance) streams (`action-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

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


EVENTS = (ActionCreated, ActionUpdated, ActionDeleted)
