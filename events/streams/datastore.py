"""Events of datastore streams (`datastore-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityNoted, EntityUpdated

CATEGORY = "datastore"


@dataclass(frozen=True)
class DatastoreCreated(EntityCreated):
    type_name = "DatastoreCreated"
    category = CATEGORY


@dataclass(frozen=True)
class DatastoreUpdated(EntityUpdated):
    type_name = "DatastoreUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class DatastoreDeleted(EntityDeleted):
    type_name = "DatastoreDeleted"
    category = CATEGORY


@dataclass(frozen=True)
class DatastoreSlotTaken(EntityNoted):
    """One of its actions was queued or given a slot; guards one-at-a-time and concurrency."""

    type_name = "DatastoreSlotTaken"
    category = CATEGORY


@dataclass(frozen=True)
class DatastoreDeactivated(EntityUpdated):
    """An action that deactivates on failure failed: -> INACTIVE."""

    type_name = "DatastoreDeactivated"
    category = CATEGORY


EVENTS = (
    DatastoreCreated,
    DatastoreUpdated,
    DatastoreDeleted,
    DatastoreSlotTaken,
    DatastoreDeactivated,
)
