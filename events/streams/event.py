"""Events of event (the external-event entity) streams (`event-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

CATEGORY = "event"


@dataclass(frozen=True)
class EventCreated(EntityCreated):
    type_name = "EventCreated"
    category = CATEGORY


@dataclass(frozen=True)
class EventUpdated(EntityUpdated):
    type_name = "EventUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class EventDeleted(EntityDeleted):
    type_name = "EventDeleted"
    category = CATEGORY


EVENTS = (EventCreated, EventUpdated, EventDeleted)
