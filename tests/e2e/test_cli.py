"""The `dart` command as a user runs it: real processes on a fresh DART_HOME (embedded SQLite)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from engines.catalog import BUILT_IN_ENGINES
from events.streams.workflow import WorkflowCreated, WorkflowDeleted, WorkflowUpdated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.runtime.settings import load_settings
from services.runtime.composition import build

DART = [sys.executable, "-m", "services.runtime.cli"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
    env.update({"DART_HOME": str(home), "DART_LOG_FORMAT": "text", **extra})
    return env


def _dart(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DART, *args], env=_env(home, **extra), capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _seed(home: Path) -> None:
    store = build(load_settings(env={"DART_HOME": str(home)})).store
    store.append(StreamAppend("workflow-AAAAAAAAAA", ExpectedVersion.NO_STREAM, [
        NewEvent(WorkflowCreated({"name": "nightly", "state": "INACTIVE"}), Metadata(actor="ann@example.com")),
    ]))
    store.append(StreamAppend("workflow-AAAAAAAAAA", 1, [WorkflowUpdated({"state": "ACTIVE"})]))
    store.append(StreamAppend("workflow-BBBBBBBBBB", ExpectedVersion.NO_STREAM, [
        WorkflowCreated({"name": "gone", "state": "ACTIVE"}), WorkflowDeleted(),
    ]))
    store.close()


def test_up_serves_health_and_ready_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([*DART, "up", "--port", str(port)], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and health is None:
            try:
                health = _get_json(f"http://127.0.0.1:{port}/health")
            except OSError:
                time.sleep(0.1)
        assert health == {"status": "ok"}
        ready = _get_json(f"http://127.0.0.1:{port}/ready")
        # The first admin key's event, then each built-in engine's name claim and creation (issue 11: dart up
        # registers them at start) and its subgraph definitions (issue 14: the no_op engine's chaining demo).
        definitions = sum(len(e.subgraph_definitions()) for e in BUILT_IN_ENGINES)
        assert ready["ready"] is True and ready["head_position"] == 1 + 2 * len(BUILT_IN_ENGINES) + definitions
        assert (tmp_path / "dart.db").exists()
        credentials = tmp_path / "credentials"
        assert credentials.stat().st_mode & 0o777 == 0o600
        key, _, secret = credentials.read_text().strip().partition(":")
        assert key and secret
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}" in out and "dart stopped" in out
    assert f"{key}:{secret}" in out  # printed once, on the first start


def test_a_second_start_creates_no_new_admin_key(tmp_path: Path) -> None:
    from services.commands.auth import first_start_admin_key

    store = build(load_settings(env={"DART_HOME": str(tmp_path)})).store
    assert first_start_admin_key(store, tmp_path, "") is not None
    assert first_start_admin_key(store, tmp_path, "") is None
    assert store.head_position() == 1
    store.close()


def test_keys_create_prints_a_working_key_once(tmp_path: Path) -> None:
    from services.commands.auth import authenticate

    result = _dart(tmp_path, "keys", "create", "--user", "ann@example.com")
    assert result.returncode == 0, result.stderr
    credentials = result.stdout.strip()
    store = build(load_settings(env={"DART_HOME": str(tmp_path)})).store
    principal = authenticate(store, "Bearer " + credentials)
    assert principal.user_id == "ann@example.com" and principal.role == "editor"  # what --admin-less keys were
    assert credentials.split(":")[1] not in json.dumps([e.as_dict() for e in store.read_all(0, 100)])
    store.close()
    bad = _dart(tmp_path, "keys", "create", "--user", "not-an-email")
    assert bad.returncode == 2 and "--user" in bad.stderr


def test_keys_have_roles_and_expiry_are_listed_without_secrets_and_revoked(tmp_path: Path) -> None:
    from services.commands.auth import authenticate
    from services.domain.errors import NotAuthenticated

    viewer = _dart(tmp_path, "keys", "create", "--user", "vic@example.com", "--role", "viewer",
                   "--expires", "2999-01-01T00:00:00+00:00")
    admin = _dart(tmp_path, "keys", "create", "--user", "ada@example.com", "--admin")
    assert viewer.returncode == 0 and admin.returncode == 0, (viewer.stderr, admin.stderr)
    assert "viewer key" in viewer.stderr and "expires 2999-01-01T00:00:00+00:00" in viewer.stderr
    store = build(load_settings(env={"DART_HOME": str(tmp_path)})).store
    try:
        assert authenticate(store, "Bearer " + viewer.stdout.strip()).role == "viewer"
        assert authenticate(store, "Bearer " + admin.stdout.strip()).role == "admin"
        listed = _dart(tmp_path, "keys", "list")
        assert listed.returncode == 0, listed.stderr
        rows = {line.split("\t")[0]: line.split("\t") for line in listed.stdout.splitlines()}
        viewer_key, viewer_secret = viewer.stdout.strip().split(":")
        assert rows[viewer_key][1:4] == ["viewer", "vic@example.com", "2999-01-01T00:00:00+00:00"]
        assert rows[admin.stdout.split(":")[0]][1:4] == ["admin", "ada@example.com", "-"]
        assert viewer_secret not in listed.stdout and "salt" not in listed.stdout
        revoked = _dart(tmp_path, "keys", "revoke", viewer_key)
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(NotAuthenticated):
            authenticate(store, "Bearer " + viewer.stdout.strip())
        again = _dart(tmp_path, "keys", "revoke", viewer_key)
        assert again.returncode == 2 and "not found" in again.stderr
    finally:
        store.close()
    for bad, named in ((["--role", "root"], "--role"), (["--expires", "yesterday"], "expires"),
                       (["--admin", "--role", "viewer"], "--admin")):
        refused = _dart(tmp_path, "keys", "create", "--user", "x@example.com", *bad)
        assert refused.returncode == 2 and named in refused.stderr, refused.stderr


def test_events_tail_json_prints_every_envelope_in_order(tmp_path: Path) -> None:
    _seed(tmp_path)
    result = _dart(tmp_path, "events", "tail", "--json")
    assert result.returncode == 0, result.stderr
    envelopes = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["global_position"] for e in envelopes] == [1, 2, 3, 4]
    assert envelopes[0]["type"] == "WorkflowCreated"
    assert envelopes[0]["metadata"]["actor"] == "ann@example.com"
    assert set(envelopes[0]) >= {"event_id", "stream_id", "stream_version", "schema_version", "data", "recorded_at"}


def test_events_tail_filters_by_type_and_stream(tmp_path: Path) -> None:
    _seed(tmp_path)
    by_type = _dart(tmp_path, "events", "tail", "--json", "--type", "WorkflowUpdated")
    assert [json.loads(x)["type"] for x in by_type.stdout.splitlines()] == ["WorkflowUpdated"]
    by_stream = _dart(tmp_path, "events", "tail", "--json", "--stream", "workflow-BBBBBBBBBB")
    assert [json.loads(x)["global_position"] for x in by_stream.stdout.splitlines()] == [3, 4]


def test_events_show_gives_history_and_state_as_of_a_position(tmp_path: Path) -> None:
    _seed(tmp_path)
    now = _dart(tmp_path, "events", "show", "workflow-AAAAAAAAAA")
    assert now.returncode == 0, now.stderr
    assert "WorkflowCreated" in now.stdout and "WorkflowUpdated" in now.stdout
    assert '"state": "ACTIVE"' in now.stdout
    then = _dart(tmp_path, "events", "show", "workflow-AAAAAAAAAA", "--as-of", "1")
    assert "WorkflowUpdated" not in then.stdout and '"state": "INACTIVE"' in then.stdout


@pytest.mark.parametrize("as_of", ["yesterday", "²", "4¹5", "2026-01-01T00:00:00"])
def test_events_show_rejects_an_unreadable_as_of(tmp_path: Path, as_of: str) -> None:
    result = _dart(tmp_path, "events", "show", "workflow-AAAAAAAAAA", "--as-of", as_of)
    assert result.returncode == 2
    assert "--as-of" in result.stderr and "Traceback" not in result.stderr


def test_projections_rebuild_reports_rate_and_keeps_rows(tmp_path: Path) -> None:
    _seed(tmp_path)
    result = _dart(tmp_path, "projections", "rebuild", "entities.workflow")
    assert result.returncode == 0, result.stderr
    assert "entities.workflow: 4 events" in result.stdout and "events/s" in result.stdout
    assert "rm_workflow: 1 rows" in result.stdout
    status = _dart(tmp_path, "projections", "status")
    line = next(x for x in status.stdout.splitlines() if x.startswith("entities.workflow "))
    assert line.split()[2:5] == ["4", "0", "1"]  # position, lag, rows


def test_projections_rebuild_names_an_unknown_projection(tmp_path: Path) -> None:
    result = _dart(tmp_path, "projections", "rebuild", "nope")
    assert result.returncode == 2
    assert "unknown projection" in result.stderr and "nope" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DART_PORT", "abc"), ("DART_PORT", "70000"), ("DART_DATABASE_URL", "mysql://x"), ("DART_LOG_FORMAT", "xml")],
)
def test_a_bad_setting_fails_fast_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    result = _dart(tmp_path, "projections", "status", **{variable: value})
    assert result.returncode == 2
    assert variable in result.stderr
