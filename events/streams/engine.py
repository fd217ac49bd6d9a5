"""Events of engine streams (`engine-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

CATEGORY = "engine"


@dataclass(frozen=True)
class EngineCreated(EntityCreated):
    type_name = "EngineCreated"
    category = CATEGORY


@dataclass(frozen=True)
class EngineUpdated(EntityUpdated):
    type_name = "EngineUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class EngineDeleted(EntityDeleted):
    type_name = "EngineDeleted"
    category = CATEGORY


EVENTS = (EngineCreated, EngineUpdated, EngineDeleted)
