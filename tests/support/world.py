"""The test world: dart's object graph built from settings over one test database (the composition root's
container, an entity service, the orchestration context, an admin principal), builders for the entities tests
start from, and a store with every inline read model for tests that append events themselves.

The fixtures on it (``make_world``, ``world``, ``projected_store``) live in tests/integration/conftest.py, over
tests/conftest.py's ``db_url``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from engines.no_op.definition import NO_OP_ENGINE
from events.database import open_store
from events.store import EventStore
from events.streams import default_registry
from projections.catalog import all_projections
from services.commands.auth import Principal
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.runtime.composition import Container, build
from services.runtime.settings import load_settings

ADMIN = Principal(key="test-key", user_id="admin@example.com", scope="admin")
NO_OP = "no_op_engine"
SUCCEEDS = "fake_action_that_succeeds"


class Clock:
    """A clock a test moves by hand (``clock.now = ...``): calling it answers the time it was last set to, for
    what takes its ``now`` as a callable (the scheduler, the orchestration)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def open_projected_store(url: str, migrate: bool = True) -> EventStore:
    """A store with the default registry and every inline projection of the catalog registered."""
    store = open_store(url, default_registry(), migrate=migrate)
    for projection in all_projections():
        if projection.mode == "inline":
            store.add_inline_projection(projection)
    return store


@dataclass(kw_only=True)
class World:
    """One dart installation: the container ``build`` makes from settings (DART_HOME, DART_DATABASE_URL and
    ``env``), an entity service acting as ``ADMIN``, and the orchestration context the consumers use.
    A test module subclasses it for its own helpers and state."""

    url: str
    home: Path
    container: Container
    service: EntityService
    orch: Orchestration
    replicas: list[Container] = field(default_factory=list)  # closed with the world

    @property
    def store(self) -> EventStore:
        return self.container.store

    def replica(self, home: Path | None = None) -> Orchestration:
        """Another process on the same database: its own container (connections), closed with the world."""
        env = {"DART_HOME": str(home or self.home), "DART_DATABASE_URL": self.url}
        other = build(load_settings(env=env), migrate=False)
        self.replicas.append(other)
        return Orchestration(other.store)

    def close(self) -> None:
        for other in self.replicas:
            other.store.close()
        self.container.store.close()

    # ------------------------------------------------------------------------------------------ builders
    def engine(self, definition: Mapping[str, Any] = NO_OP_ENGINE) -> dict[str, Any]:
        """Register an engine (the no_op engine unless told); returns the created entity."""
        return self.service.create("engine", {"data": copy.deepcopy(dict(definition))}, ADMIN)

    def datastore(self, name: str | None = None, state: str = "ACTIVE", engine: str = NO_OP, **data: Any) -> str:
        created = self.service.create("datastore", {"data": {
            "name": name or _name("ds"), "engine_name": engine, "state": state, "args": {}, **data}}, ADMIN)
        return str(created["id"])

    def workflow(self, datastore_id: str, actions: Sequence[Mapping[str, Any]] = (), name: str | None = None,
                 state: str = "ACTIVE", concurrency: int | None = None) -> str:
        """A workflow on the datastore with ``actions`` (action data, in order); ``concurrency`` raised
        after creation, as a user would (a workflow on an ACTIVE datastore starts at 1)."""
        flow = self.service.create("workflow", {"data": {"name": name or _name("wf"), "state": state}}, ADMIN,
                                   datastore_id)
        workflow_id = str(flow["id"])
        if concurrency is not None:
            self.update("workflow", workflow_id, concurrency=concurrency)
        if actions:
            self.actions(("workflow", workflow_id), actions)
        return workflow_id

    def actions(self, parent: tuple[str, str], actions: Sequence[Mapping[str, Any]]) -> list[str]:
        """Actions of a workflow (``("workflow", id)``) or ad-hoc on a datastore (``("datastore", id)``), in
        one append; their ids in order."""
        created = self.service.create_many("action", [dict(a) for a in actions], ADMIN, parent)
        return [str(c["id"]) for c in created]

    def trigger(self, trigger_type_name: str, args: Mapping[str, Any], workflow_ids: Sequence[str] = (),
                state: str = "ACTIVE", name: str | None = None) -> str:
        created = self.service.create("trigger", {"data": {
            "name": name or _name("t"), "trigger_type_name": trigger_type_name, "state": state,
            "args": dict(args), "workflow_ids": list(workflow_ids)}}, ADMIN)
        return str(created["id"])

    def event(self, name: str | None = None, state: str = "ACTIVE") -> str:
        created = self.service.create("event", {"data": {"name": name or _name("ev"), "state": state}}, ADMIN)
        return str(created["id"])

    def dataset(self, location: str, name: str | None = None) -> str:
        created = self.service.create("dataset", {"data": {
            "name": name or _name("ds"), "table_name": "t", "location": location, "load_type": "INSERT",
            "data_format": {"file_format": "TEXTFILE", "row_format": "DELIMITED"},
            "columns": [{"name": "c", "data_type": "STRING"}], "compression": "NONE"}}, ADMIN)
        return str(created["id"])

    def subscription(self, dataset_id: str, name: str | None = None, **data: Any) -> str:
        created = self.service.create("subscription", {"data": {"name": name or _name("s"), **data}}, ADMIN,
                                      dataset_id)
        return str(created["id"])

    def update(self, category: str, entity_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields of an entity through the service, as an admin would."""
        return self.service.update(category, entity_id, lambda current: {**current, **changes}, ADMIN)


W = TypeVar("W", bound=World)


def open_world(
    url: str,
    home: Path,
    cls: type[W] = World,  # type: ignore[assignment]  # mypy cannot see that World fits every W
    env: Mapping[str, str] | None = None,
    engine: bool = True,
) -> W:
    """Build dart over ``url`` with DART_HOME ``home`` (plus ``env`` settings); the no_op engine registered
    unless ``engine`` is false. The caller closes it."""
    settings = load_settings(env={"DART_HOME": str(home), "DART_DATABASE_URL": url, **(env or {})})
    container = build(settings)
    world = cls(url=url, home=home, container=container, service=EntityService(container.store, container),
                orch=Orchestration(container.store))
    if engine:
        world.engine()
    return world
