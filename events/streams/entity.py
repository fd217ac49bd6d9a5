"""The lifecycle every entity stream shares: created with its data, updated by changed fields, deleted.

Each event knows how it changes the entity's state (``evolve``), so a read model, an ``as_of`` query and a
rebuild all fold the same way. Categories subclass these with their own stable type names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.types import Event

State = dict[str, Any] | None


@dataclass(frozen=True)
class EntityCreated(Event):
    data: dict[str, Any]

    def evolve(self, state: State) -> State:
        return dict(self.data)


@dataclass(frozen=True)
class EntityUpdated(Event):
    changes: dict[str, Any]

    def evolve(self, state: State) -> State:
        if state is None:
            return None
        return {**state, **self.changes}


@dataclass(frozen=True)
class EntityNoted(Event):
    """Something happened to the entity that changes none of its fields (a trigger fired for a workflow, an
    action was given one of a datastore's slots). It still moves the stream's version, which is what
    guards decisions taken on that stream."""

    note: dict[str, Any]

    def evolve(self, state: State) -> State:
        return state


@dataclass(frozen=True)
class EntityDeleted(Event):
    def evolve(self, state: State) -> State:
        return None


def fold(state: State, events: list[Event]) -> State:
    for e in events:
        state = e.evolve(state)  # type: ignore[attr-defined]
    return state
