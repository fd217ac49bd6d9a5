"""Events of dataset streams (`dataset-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

CATEGORY = "dataset"


@dataclass(frozen=True)
class DatasetCreated(EntityCreated):
    type_name = "DatasetCreated"
    category = CATEGORY


@dataclass(frozen=True)
class DatasetUpdated(EntityUpdated):
    type_name = "DatasetUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class DatasetDeleted(EntityDeleted):
    type_name = "DatasetDeleted"
    category = CATEGORY


EVENTS = (DatasetCreated, DatasetUpdated, DatasetDeleted)
