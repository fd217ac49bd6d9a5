"""Events of name-claim streams (``<category>_name-<name>``): the unique names of engines and datasets.

Claiming a name is an append with an expected version in the same transaction as the entity's creation,
so two concurrent creates with one name can never both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.types import Event

# Claims live in one stream category per entity kind (engine_name-, dataset_name-), so no single category.
CATEGORY = ""


@dataclass(frozen=True)
class NameClaimed(Event):
    type_name = "NameClaimed"
    category = CATEGORY
    entity_id: str


@dataclass(frozen=True)
class NameReleased(Event):
    type_name = "NameReleased"
    category = CATEGORY
    entity_id: str


EVENTS = (NameClaimed, NameReleased)
