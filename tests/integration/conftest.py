"""The test world for the integration tests (tests/support/world.py): dart built from settings over a fresh
database (``make_world``, ``world``), and a store with every inline read model (``projected_store``).

Each runs a test once on SQLite and once on PostgreSQL (marked ``postgres``) through tests/conftest.py's
``db_url``; a SQLite-only or PostgreSQL-only test passes ``sqlite_url`` or ``pg_url`` to ``make_world``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from bench.harness.moto import moto_server
from events.store import EventStore
from tests.support.world import World, open_projected_store, open_world


@pytest.fixture
def projected_store(db_url: str) -> Iterator[EventStore]:
    """A migrated store with the default registry and every inline read model, on each backend."""
    opened = open_projected_store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """A factory building the test world over a database URL (``db_url``, or ``sqlite_url`` for a test that is
    SQLite-only), with DART_HOME in tmp_path: ``make_world(url, cls=World, env=None, engine=True)``.

    ``cls`` is a World subclass with a module's own helpers, ``env`` more settings (e.g. a moto endpoint),
    ``engine=False`` leaves the no_op engine unregistered. Every world (and its replicas) is closed after the
    test; request the URL fixture before this one so they are closed before their database is dropped.
    """
    opened: list[World] = []

    def _make(url: str, cls: type[World] = World, env: Mapping[str, str] | None = None,
              engine: bool = True) -> World:
        world = open_world(url, tmp_path, cls, env, engine)
        opened.append(world)
        return world

    yield _make
    for world in reversed(opened):
        world.close()


@pytest.fixture
def world(db_url: str, make_world: Callable[..., World]) -> World:
    """dart with the no_op engine registered, on each backend."""
    return make_world(db_url)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server (the real AWS wire protocol on loopback), one per test module."""
    with moto_server() as url:
        yield url
