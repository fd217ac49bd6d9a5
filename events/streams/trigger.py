"""Events of trigger streams (`trigger-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

CATEGORY = "trigger"


@dataclass(frozen=True)
class TriggerCreated(EntityCreated):
    type_name = "TriggerCreated"
    category = CATEGORY


@dataclass(frozen=True)
class TriggerUpdated(EntityUpdated):
    type_name = "TriggerUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class TriggerDeleted(EntityDeleted):
    type_name = "TriggerDeleted"
    category = CATEGORY


EVENTS = (TriggerCreated, TriggerUpdated, TriggerDeleted)
