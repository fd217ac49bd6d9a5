"""Event classes for tests: frozen dataclasses with JSON-native fields, registered by ``make_registry``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from events.registry import EventRegistry
from events.types import Event


@dataclass(frozen=True)
class ItemAdded(Event):
    type_name = "ItemAdded"

    item_id: str
    quantity: int
    price: float = 0.0
    tags: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass(frozen=True)
class ItemRemoved(Event):
    type_name = "ItemRemoved"

    item_id: str
    reason: str | None = None


@dataclass(frozen=True)
class CartCheckedOut(Event):
    type_name = "CartCheckedOut"

    total: float
    express: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NeverRegistered(Event):
    """A well-formed event class that no test registry knows."""

    type_name = "NeverRegistered"

    value: int


SAMPLE_EVENT_CLASSES: tuple[type[Event], ...] = (ItemAdded, ItemRemoved, CartCheckedOut)


def make_registry() -> EventRegistry:
    """A fresh registry holding the sample event classes (and nothing else)."""
    registry = EventRegistry()
    for cls in SAMPLE_EVENT_CLASSES:
        registry.register(cls)
    return registry
