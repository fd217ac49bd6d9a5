"""Shared fixtures: a test event registry, throw-away SQLite and PostgreSQL databases, and stores on them.
The test world (dart built from settings over one database) is in tests/integration/conftest.py.

PostgreSQL fixtures need ``DART_TEST_DATABASE_URL`` (a server URL such as
``postgresql://postgres@127.0.0.1:5432/postgres``); without it every test that uses them is skipped with the
reason saying so. With it, each test gets its own freshly created database, dropped afterwards.

``db_url`` and everything built on it (``store`` here; ``projected_store`` and ``world`` for the integration
tests) run a test once on SQLite and once on PostgreSQL (marked ``postgres``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bench.harness import pg
from events.database import open_store
from events.registry import EventRegistry
from events.store import EventStore
from tests.support.sample_events import make_registry
from tests.support.stores import BACKENDS


@pytest.fixture
def registry() -> EventRegistry:
    """A fresh registry with the sample events (tests.support.sample_events) registered."""
    return make_registry()


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL server URL from DART_TEST_DATABASE_URL; skips the test when it is not set."""
    url = pg.server_url_from_env()
    if url is None:
        pytest.skip(pg.SKIP_REASON)
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """The URL of a fresh, empty, uniquely named PostgreSQL database, dropped after the test."""
    with pg.temporary_database(pg_server_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """The URL of a fresh SQLite database file in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture
def make_store() -> Iterator[Callable[..., EventStore]]:
    """A factory opening (and migrating) stores, e.g. a second store on the same URL with another registry.

    Every store it opened is closed after the test. Request the URL fixture (``pg_url``) before this one
    so the stores are closed before their database is dropped.
    """
    opened: list[EventStore] = []

    def _open(url: str, registry: EventRegistry, migrate: bool = True) -> EventStore:
        store = open_store(url, registry, migrate=migrate)
        opened.append(store)
        return store

    yield _open
    for store in reversed(opened):
        store.close()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database: once on SQLite and once on PostgreSQL (marked ``postgres``)."""
    return request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")


@pytest.fixture
def store(db_url: str, registry: EventRegistry) -> Iterator[EventStore]:
    """A migrated, empty event store with the sample registry, on each backend.

    ``store.engine`` reaches the same database for raw SQL; ``store.engine.url`` opens more stores on it.
    The store is closed before its database is dropped.
    """
    opened = open_store(db_url, registry)
    yield opened
    opened.close()
