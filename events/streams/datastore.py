"""Events of datastore streams (`datastore-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

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


EVENTS = (DatastoreCreated, DatastoreUpdated, DatastoreDeleted)
