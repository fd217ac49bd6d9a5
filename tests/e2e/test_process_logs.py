"""Every long-running production process writes JSON lines to its own file under ``DART_HOME/logs``, beside
the console: ``dart api`` (master and gunicorn workers in one api.log, the access lines included), ``dart
relay`` and ``dart worker <name>`` (``dart up``'s up.log is tested in test_up_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.stacks import free_port

DART = [sys.executable, "-m", "services.runtime.cli"]
TIMEOUT = 60.0


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for(what: str, found: Callable[[], bool], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not found():
        assert all(p.poll() is None for p in procs), f"a process exited before {what}"
        assert time.monotonic() < deadline, f"no {what} in {TIMEOUT:.0f} s"
        time.sleep(0.1)


@pytest.fixture()
def started(tmp_path: Path) -> Iterator[tuple[Path, Callable[..., subprocess.Popen[bytes]], list]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
    # kombu's in-memory transport: the consumers connect without a broker server (nothing is delivered here).
    env.update(DART_HOME=str(tmp_path / "home"), DART_BROKER_URL="memory://", DART_LOG_FORMAT="json")
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        console = open(tmp_path / f"{'-'.join(args[:2])}.console", "ab")  # noqa: SIM115 (closed with the test)
        procs.append(subprocess.Popen([*DART, *args], env=env, stdout=console, stderr=subprocess.STDOUT))
        console.close()
        return procs[-1]

    try:
        yield tmp_path / "home" / "logs", start, procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_api_relay_and_workers_each_write_json_lines_to_their_own_file(started: tuple) -> None:
    logs, start, procs = started
    port = free_port()
    api = start("api", "--port", str(port), "--workers", "2", "--threads", "2")
    booted = lambda: sum("Booting worker" in e["msg"] for e in _lines(logs / "api.log")) == 2
    _wait_for("two booted workers in api.log", booted, [api])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health?from=the-log-test", timeout=10) as answer:
        assert answer.status == 200
    # The access line is written by the worker that answered, not by the master that opened the file.
    answered = lambda: any(
        "the-log-test" in e["msg"] and e["logger"] == "gunicorn.access" for e in _lines(logs / "api.log")
    )
    _wait_for("the request's access line in api.log", answered, [api])

    start("relay")
    start("worker", "orchestrator")
    start("worker", "scheduler")
    _wait_for(
        "the relay's start in relay.log",
        lambda: any("relay publishing to memory://" in e["msg"] for e in _lines(logs / "relay.log")),
        procs,
    )
    _wait_for(
        "the consumer's connection in worker-orchestrator.log",
        lambda: any(e["msg"].startswith("Connected to") for e in _lines(logs / "worker-orchestrator.log")),
        procs,
    )
    _wait_for(
        "the scheduler's start in worker-scheduler.log",
        lambda: any("worker scheduler starting" in e["msg"] for e in _lines(logs / "worker-scheduler.log")),
        procs,
    )
    for name in ("api", "relay", "worker-orchestrator", "worker-scheduler"):
        entries = _lines(logs / f"{name}.log")
        assert entries and all({"ts", "level", "logger", "msg"} <= set(e) for e in entries), name
        assert (logs / f"{name}.log").stat().st_mode & 0o777 == 0o600, name
    assert logs.stat().st_mode & 0o777 == 0o700
