"""Fixtures for black-box tests: `dart up` as a real process, on SQLite and on PostgreSQL.

The running darts themselves (every wiring, embedded and production) are built in tests/e2e/stacks.py;
``RunningDart``, ``KEY`` and ``SECRET`` are re-exported here for the modules that import them
from this module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.harness.api_client import Api
from tests.e2e.stacks import KEY, SECRET, RunningDart, free_port
from bench.harness import pg

__all__ = ["BACKENDS", "KEY", "SECRET", "RunningDart", "free_port"]

BACKENDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


@pytest.fixture(scope="module", params=BACKENDS)
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    home = tmp_path_factory.mktemp(f"dart-{request.param}")
    if request.param == "postgres":
        server = pg.server_url_from_env()
        if server is None:
            pytest.skip(pg.SKIP_REASON)
        with pg.temporary_database(server) as url:
            running = RunningDart(home, url)
            try:
                yield running
            finally:
                running.stop()
    else:
        running = RunningDart(home, None)
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def api(dart: RunningDart) -> Api:
    return dart.api()
