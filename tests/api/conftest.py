"""In-process API tests: ``create_app(...)`` over a real SQLite store in a temp folder, driven through
``falcon.testing.TestClient`` with an admin key. No server, no workers: nothing moves an entity but the
requests a test makes (and the events it appends itself, as the launcher would)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import falcon
import falcon.testing
import pytest

from services.api.app import create_app
from services.api.listing import SchemaCache
from services.commands.auth import authenticate, create_api_key
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.runtime.composition import Container, build
from services.runtime.settings import load_settings

ADMIN_USER = "admin"


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@dataclass
class GuessCalls:
    """Stands in for the S3 side of the dataset guess (tests/e2e/test_dataset_guess.py runs the real one
    against moto's server): records each call and answers a fixed DatasetData."""

    calls: list[tuple[str | None, int, str]] = field(default_factory=list)

    def __call__(self, s3_path: str | None, max_lines: int, user_id: str) -> dict[str, Any]:
        self.calls.append((s3_path, max_lines, user_id))
        return {"name": "guessed", "location": s3_path, "user_id": user_id}


class Api:
    """The TestClient with an ``Authorization`` header, answering like the black-box client of the e2e
    tests: ``request`` gives (status, JSON body), the verbs give ``results`` or raise on a non-200."""

    def __init__(self, client: falcon.testing.TestClient, authorization: str | None, prefix: str = "/api/1") -> None:
        self.client = client
        self.authorization = authorization
        self.prefix = prefix

    def as_key(self, key: str | None, secret: str | None = None) -> Api:
        return Api(self.client, basic(key, secret or "") if key else None, self.prefix)

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
        """``path`` is below /api/1 unless it is one of the open root paths (/health, /ready, /metrics)."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self.authorization:
            sent["Authorization"] = self.authorization
        query = {k: (json.dumps(v) if isinstance(v, list) else str(v)) for k, v in (params or {}).items()}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        full = path if path in ("/health", "/ready", "/metrics") else self.prefix + path
        result = self.client.simulate_request(method, full, params=query, headers=sent, body=data)
        try:
            return result.status_code, result.json if result.content else None
        except ValueError:
            return result.status_code, result.text

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, result = self.request(method, path, body, **kw)
        assert status == 200, (method, path, status, result)
        return result["results"] if isinstance(result, dict) and "results" in result else result

    def get(self, path: str, **kw: Any) -> Any:
        return self.ok("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.ok("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.ok("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> Any:
        return self.ok("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.ok("DELETE", path, **kw)


@dataclass
class InProcessDart:
    container: Container
    app: falcon.App
    api: Api
    guess: GuessCalls
    key: str
    secret: str

    @property
    def store(self) -> Any:
        return self.container.store


def start(home: Any, guess: GuessCalls | None = None) -> InProcessDart:
    # The composition root's container (store with its inline read models, secrets) on a temp DART_HOME;
    # the app's collaborators are then named one by one, as services/runtime/composition.py api_app does.
    container = build(load_settings(env={"DART_HOME": str(home)}))
    store = container.store
    guess = GuessCalls() if guess is None else guess
    app = create_app(
        entities=EntityService(store, container),
        authenticate=partial(authenticate, store),
        orchestration=Orchestration(store, container.settings.s3_datastores_root),
        projections=container.projections,
        secrets=container.secrets,
        guess_dataset=guess,
        schema_cache=SchemaCache(),
    )
    key, secret = create_api_key(store, ADMIN_USER, "admin")
    api = Api(falcon.testing.TestClient(app), basic(key, secret))
    return InProcessDart(container, app, api, guess, key, secret)


@pytest.fixture(scope="module")
def dart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessDart]:
    """One app per test module (tests use unique names, as against a long-running dart)."""
    running = start(tmp_path_factory.mktemp("dart-api"))
    try:
        yield running
    finally:
        running.store.close()


@pytest.fixture(scope="module")
def api(dart: InProcessDart) -> Api:
    return dart.api
