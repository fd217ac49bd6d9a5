"""What a local engine process is given (issue 11, finding 2): PATH, a private HOME, TMPDIR and working folder,
its action's DART_* variables, the AWS endpoint, region and credentials, and the variables
DART_LOCAL_ENGINE_ENV names; nothing else of dart's environment (the bootstrap key, DART_HOME, the broker's and
the database's URLs). A real child process dumps its environment."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from events.streams.action import ActionQueued
from events.types import NewEvent, StreamAppend
from services.adapters.local_engines import local_launcher_from_settings
from services.runtime.settings import load_settings
from tests.support.world import SUCCEEDS, World

DUMP = ("import json, os, sys; json.dump({'env': dict(os.environ), 'cwd': os.getcwd()}, "
        "open(os.path.join(os.environ['ENGINE_DUMP_DIR'], os.environ['DART_ACTION_ID'] + '.json'), 'w'))")
LEAKS = {
    "DART_BOOTSTRAP_API_KEY": "admin:bootstrap-secret",
    "DART_BROKER_URL": "amqp://user:broker-password@127.0.0.1:5672//",
    "DART_DATABASE_URL": "postgresql://dart:db-password@127.0.0.1/dart",
    "DART_SMTP_PASSWORD": "smtp-password",
    "UNRELATED_TOKEN": "unrelated",
}


def test_a_local_engine_gets_only_what_it_needs(sqlite_url: str, make_world: Callable[..., World], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world(sqlite_url)
    dump = tmp_path / "dumps"
    dump.mkdir()
    for name, value in {**LEAKS, "DART_HOME": str(world.home), "ENGINE_DUMP_DIR": str(dump),
                        "AWS_ACCESS_KEY_ID": "engine-key", "AWS_SECRET_ACCESS_KEY": "engine-secret"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(env={
        "DART_HOME": str(world.home), "DART_LOCAL_ENGINE_ENV": "ENGINE_DUMP_DIR, NOT_SET_ANYWHERE",
        "DART_LOCAL_ENGINES": json.dumps({"no_op_engine": [sys.executable, "-c", DUMP]}),
        "DART_AWS_ENDPOINT_URL": "http://127.0.0.1:1", "DART_AWS_REGION": "eu-west-3"})
    launcher = local_launcher_from_settings(world.orch, "http://127.0.0.1:2/api/1", settings)
    datastore_id = world.datastore()
    [action_id] = world.actions(("datastore", datastore_id), [{"name": "a", "action_type_name": SUCCEEDS}])
    version = world.service.reader.get("action", action_id)["version_id"]
    world.store.append(StreamAppend(f"action-{action_id}", version, [NewEvent(ActionQueued({
        "state": "QUEUED", "queued_time": "2024-01-01T00:00:00+00:00"}))]))
    assert launcher.launch_ready(datastore_id) == [action_id]
    deadline = time.monotonic() + 30
    while world.service.reader.get("action", action_id)["data"]["state"] != "FAILED":  # exited without a check-in
        assert time.monotonic() < deadline, "the engine never exited"
        time.sleep(0.05)

    seen = json.loads((dump / f"{action_id}.json").read_text())
    env, cwd = seen["env"], Path(seen["cwd"])
    folder = cwd.parent
    # LC_CTYPE: the child's Python sets it itself when it coerces the C locale to UTF-8 (PEP 538).
    assert {k for k in env if not k.startswith("AWS_")} - {"LC_CTYPE"} == {
        "PATH", "HOME", "TMPDIR", "DART_ACTION_ID", "DART_ACTION_USER_ID", "DART_API_URL", "DART_API_TOKEN",
        "DART_AWS_ENDPOINT_URL", "DART_AWS_REGION", "DART_ENGINE_DATA_DIR", "ENGINE_DUMP_DIR"}, sorted(env)
    assert not any(value in json.dumps(env) for value in LEAKS.values())
    assert str(world.home) not in {env["HOME"], env["TMPDIR"]} and env["DART_ENGINE_DATA_DIR"] == str(
        world.home / "engines")
    assert Path(env["HOME"]).parent == folder and Path(env["TMPDIR"]).parent == folder and cwd.name == "work"
    assert env["DART_ACTION_ID"] == action_id and env["DART_API_URL"] == "http://127.0.0.1:2/api/1"
    assert env["AWS_ACCESS_KEY_ID"] == "engine-key" and env["AWS_SECRET_ACCESS_KEY"] == "engine-secret"
    assert env["DART_AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["DART_AWS_REGION"] == "eu-west-3"
    assert not folder.exists()  # removed once the engine exited
