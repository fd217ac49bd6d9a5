"""A required secret end to end (issue 11, the bar): a real `dart up` registers an engine whose options mark
``password`` required, secret and at least 8 characters; a datastore is created with one; an action runs and its
engine (a real local process) checks out and receives it. Then every API response the test got, the whole log,
the server's log files under DART_HOME/logs and the database are searched for the value: it is nowhere (and an
editor's key racing the engine for the check-out is refused every time). On
SQLite with the embedded encrypted secrets file, and on PostgreSQL with AWS Secrets Manager (moto's server)."""

from __future__ import annotations

import hashlib
import json
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bench.harness import pg
from bench.harness.api_client import Api
from bench.harness.moto import AWS_ENV, moto_server
from tests.e2e.stacks import KEY, SECRET, RunningDart

pytestmark = pytest.mark.slow

ENGINE = "secret_check_engine"
OPTIONS = {"type": "object", "required": ["password"], "additionalProperties": False,
           "properties": {"password": {"type": "string", "x-dart-secret": True, "minLength": 8},
                          "user": {"type": "string"}}}
# The engine reports a digest of what it received, so the test can check it without the value leaving it.
ENGINE_SCRIPT = """
import hashlib, sys
from engines.sdk import run_action

def handle(context, client):
    password = context.datastore_args["password"]
    client.report_progress(context.action_id, 1.0,
                           {"password_sha256": hashlib.sha256(password.encode()).hexdigest()})

sys.exit(run_action(handle))
"""


class RecordingApi(Api):
    """The black-box client, keeping the text of every answer it got."""

    def __init__(self, base: str, key: str, secret: str) -> None:
        super().__init__(base, key, secret)
        self.answers: list[str] = []

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
        status, result = super().request(method, path, body, params, headers, raw)
        self.answers.append(json.dumps(result))
        return status, result


@pytest.fixture(scope="module", params=["sqlite-local", pytest.param("postgres-aws", marks=pytest.mark.postgres)])
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    home = tmp_path_factory.mktemp(f"dart-{request.param}")
    script = home.parent / f"{request.param}-engine.py"
    script.write_text(ENGINE_SCRIPT)
    env: dict[str, Any] = {"DART_LOCAL_ENGINES": json.dumps({ENGINE: [sys.executable, str(script)]})}
    if request.param == "sqlite-local":
        running = RunningDart(home, None, **env)
        try:
            yield running
        finally:
            running.stop()
        return
    server = pg.server_url_from_env()
    if server is None:
        pytest.skip(pg.SKIP_REASON)
    with moto_server() as endpoint, pg.temporary_database(server) as url:
        env.update(DART_SECRETS="aws", DART_AWS_ENDPOINT_URL=endpoint, **AWS_ENV)
        running = RunningDart(home, url, **env)
        try:
            yield running
        finally:
            running.stop()


def _finished(api: Api, action_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        action: dict[str, Any] = api.get(f"/action/{action_id}")
        if action["data"]["state"] in ("COMPLETED", "FAILED"):
            return action
        assert time.monotonic() < deadline, action
        time.sleep(0.1)


def _database_text(dart: RunningDart) -> str:
    """Every row of every table of dart's database, as text (on SQLite, the file's bytes too)."""
    parts = []
    engine = dart.engine()
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            quoted = engine.dialect.identifier_preparer.quote(table)
            parts += [repr(tuple(row)) for row in conn.execute(sa.text(f"SELECT * FROM {quoted}"))]
    if dart.database_url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            path = Path(dart.database_url.removeprefix("sqlite:///") + suffix)
            if path.exists():
                parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_a_required_secret_reaches_its_engine_and_nothing_else(dart: RunningDart) -> None:
    api = RecordingApi(dart.base + "/api/1", KEY, SECRET)
    secret = f"pw-{uuid.uuid4().hex}"
    api.post("/engine", {"data": {"name": ENGINE, "description": "checks its secret", "options_json_schema": OPTIONS,
                                  "supported_action_types": [{"name": "check", "description": "d"}]}})
    status, refused = api.request("POST", "/datastore", {"data": {
        "name": "refused", "engine_name": ENGINE, "state": "ACTIVE", "args": {"password": secret[:7]}}})
    assert status == 400 and "minLength" in refused["error_message"]
    datastore = api.post("/datastore", {"data": {"name": f"ds_{uuid.uuid4().hex[:8]}", "engine_name": ENGINE,
                                                 "state": "ACTIVE", "args": {"password": secret, "user": "u"}}})
    created = api.post("/api_key", {"data": {"user_id": "racer@example.com", "role": "editor"}})
    racer = RecordingApi(dart.base + "/api/1", created["key"], created["secret"])
    [action] = api.post(f"/datastore/{datastore['id']}/action", [{"data": {
        "name": "check", "action_type_name": "check", "engine_name": ENGINE}}])
    # Finding 1: an editor's key racing the real engine for the check-out (and its secret) never gets it.
    raced = [racer.request("PUT", f"/engine/action/{action['id']}/checkout")[0] for _ in range(20)]

    done = _finished(api, action["id"])
    assert set(raced) == {403}, raced
    api.answers += racer.answers

    assert done["data"]["state"] == "COMPLETED", done["data"].get("error_message")
    assert done["data"]["extra_data"] == {"password_sha256": hashlib.sha256(secret.encode()).hexdigest()}
    api.get(f"/datastore/{datastore['id']}")
    created_at = api.get(f"/datastore/{datastore['id']}/history")[0]["global_position"]
    api.get(f"/datastore/{datastore['id']}", params={"as_of": created_at})
    after, log = 0, []
    while page := api.get("/log", params={"after": after, "limit": 1000}):
        log += page
        after = page[-1]["global_position"]
    assert any(e["type"] == "DatastoreSecretsStored" for e in log)
    with urllib.request.urlopen(dart.base + "/metrics", timeout=30) as metrics:
        api.answers.append(metrics.read().decode())
    # dart's own log files and each action's engine output (logs/actions/<id>.log)
    logs = [path.read_text(errors="replace") for path in (dart.home / "logs").rglob("*") if path.is_file()]
    assert logs, "dart up wrote no log file"
    logs.append((dart.home / "dart.log").read_text(errors="replace"))  # its stdout and stderr, the engine's too
    places = {"API answers": "\n".join(api.answers), "log files": "\n".join(logs),
              "database": _database_text(dart)}
    for where, text in places.items():
        assert secret not in text and secret[:7] not in text, f"the secret is in the {where}"
