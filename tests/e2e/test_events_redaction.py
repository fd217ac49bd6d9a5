"""``dart events tail`` and ``dart events show`` print an API key's events without its salt and secret hash,
as ``GET /api/1/log`` serves them (issue 11: no answer, and no terminal, shows what allows offline guessing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from services.runtime.composition import build
from services.runtime.settings import load_settings

DART = [sys.executable, "-m", "services.runtime.cli"]


def _dart(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
    env.update({"DART_HOME": str(home), "DART_LOG_FORMAT": "text"})
    return subprocess.run([*DART, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def _created_key(home: Path) -> tuple[str, list[str]]:
    """A key made by ``dart keys create``: the key and the salt and hash its stream holds."""
    created = _dart(home, "keys", "create", "--user", "ann@example.com", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().partition(":")[0]
    store = build(load_settings(env={"DART_HOME": str(home)})).store
    try:
        hidden = [
            v
            for e in store.read_stream(f"api_key-{key}")
            for part in e.data.values()
            if isinstance(part, dict)
            for k, v in part.items()
            if k in ("salt", "secret_hash")
        ]
    finally:
        store.close()
    assert len(hidden) >= 2  # the salt and the hash are in the log: the test below has something to find
    return key, hidden


def test_events_tail_leaves_out_key_salts_and_hashes_in_both_formats(tmp_path: Path) -> None:
    key, hidden = _created_key(tmp_path)
    as_json = _dart(tmp_path, "events", "tail", "--json")
    text = _dart(tmp_path, "events", "tail")
    assert as_json.returncode == 0 and text.returncode == 0, as_json.stderr + text.stderr
    envelopes = [json.loads(line) for line in as_json.stdout.splitlines()]
    created = [e for e in envelopes if e["type"] == "ApiKeyCreated" and e["stream_id"] == f"api_key-{key}"]
    assert len(created) == 1
    assert created[0]["data"]["data"]["user_id"] == "ann@example.com"  # the rest of the event is kept
    assert "salt" not in created[0]["data"]["data"] and "secret_hash" not in created[0]["data"]["data"]
    assert f"api_key-{key}" in text.stdout and "ApiKeyCreated" in text.stdout
    for value in hidden:
        assert value not in as_json.stdout and value not in text.stdout


def test_events_show_leaves_out_key_salts_and_hashes_in_events_and_state(tmp_path: Path) -> None:
    key, hidden = _created_key(tmp_path)
    shown = _dart(tmp_path, "events", "show", f"api_key-{key}")
    as_json = _dart(tmp_path, "events", "show", f"api_key-{key}", "--json")
    assert shown.returncode == 0 and as_json.returncode == 0, shown.stderr + as_json.stderr
    state = json.loads(shown.stdout.partition("-- state at")[2].partition("\n")[2])
    assert state["user_id"] == "ann@example.com" and state["scope"] == "viewer"
    assert "salt" not in state and "secret_hash" not in state
    assert "ApiKeyCreated" in as_json.stdout
    for value in hidden:
        assert value not in shown.stdout and value not in as_json.stdout
