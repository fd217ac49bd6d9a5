"""The in-process app of tests/api/conftest.py on either store: SQLite, or a fresh PostgreSQL database (skipped
without a server, failed under DART_REQUIRE_POSTGRES as tests/support/stores.py does), for the modules whose
queries differ by dialect (the graph's JSON paths, window functions and text matches)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import falcon.testing
import pytest

from bench.harness import pg
from services.api.app import create_app
from services.api.listing import SchemaCache
from services.commands.auth import authenticate, create_api_key
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.runtime.composition import build
from services.runtime.settings import load_settings
from tests.api.conftest import ADMIN_USER, Api, GuessCalls, InProcessDart, basic


@contextmanager
def started(backend: str, home: Path) -> Iterator[InProcessDart]:
    env = {"DART_HOME": str(home)}
    with _database(backend) as url:
        if url:
            env["DART_DATABASE_URL"] = url
        container = build(load_settings(env=env))
        store = container.store
        guess = GuessCalls()
        try:
            app = create_app(
                entities=EntityService(store, container), authenticate=partial(authenticate, store),
                orchestration=Orchestration(store, container.settings.s3_datastores_root),
                projections=container.projections, secrets=container.secrets, guess_dataset=guess,
                schema_cache=SchemaCache(),
            )
            key, secret = create_api_key(store, ADMIN_USER, "admin")
            api = Api(falcon.testing.TestClient(app), basic(key, secret))
            yield InProcessDart(container, app, api, guess, key, secret)
        finally:
            store.close()


@contextmanager
def _database(backend: str) -> Iterator[str | None]:
    if backend != "postgres":
        yield None
        return
    server = pg.server_url_from_env()
    if server is None:
        pytest.skip(pg.SKIP_REASON)
    with pg.temporary_database(server) as url:
        yield str(url)
