"""`dart up`'s HTTP server against careless and hostile clients (issue 11, finding 11): silent connections hold
no thread and are closed after the read timeout, bodies past the limit are 413s over the wire (chunked too),
SIGTERM stops it cleanly; and DART_HOME is 0700, its database 0600, its log files JSON lines."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stacks import KEY, SECRET, RunningDart

SILENT = 200  # connections that never finish their request (the stdlib server held a thread for each)
READ_TIMEOUT = 2


@pytest.fixture(scope="module")
def dart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    home = tmp_path_factory.mktemp("dart-up-server")
    os.chmod(home, 0o755)  # as an older dart (or a careless mkdir) left it
    running = RunningDart(home, None, DART_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
                          DART_MAX_BODY_BYTES=str(64 * 1024))
    try:
        yield running
    finally:
        running.stop()


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="counts threads through /proc")
def test_silent_clients_hold_no_thread_and_are_closed_after_the_read_timeout(dart: RunningDart) -> None:
    before = threads_of(dart.proc.pid)
    sockets = []
    try:
        for i in range(SILENT):
            sock = socket.create_connection(("127.0.0.1", dart.port), timeout=5)
            if i % 2:  # half of them stop in the middle of their headers, the others never say a word
                sock.sendall(b"POST /api/1/engine HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            sockets.append(sock)
        started = time.monotonic()
        with urllib.request.urlopen(dart.base + "/health", timeout=5) as response:
            assert response.status == 200
        assert time.monotonic() - started < 2, "a normal request waited behind the silent clients"
        assert threads_of(dart.proc.pid) - before < 10, (before, threads_of(dart.proc.pid))
        wait_until(lambda: all(closed_by_server(s) for s in sockets), READ_TIMEOUT + 15, "the server to close them")
    finally:
        for sock in sockets:
            sock.close()


def test_a_body_past_the_limit_is_a_413_over_the_wire_with_or_without_content_length(dart: RunningDart) -> None:
    big = json.dumps({"data": {"name": "x", "description": "y" * 100_000}}).encode()
    key = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    request = urllib.request.Request(dart.base + "/api/1/engine", data=big, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": key})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 413
    assert "DART_MAX_BODY_BYTES" in json.loads(refused.value.read())["error_message"]
    chunked = urllib.request.Request(dart.base + "/api/1/engine", data=iter([big[:50_000], big[50_000:]]),
                                     method="POST", headers={"Content-Type": "application/json",
                                                             "Authorization": key, "Transfer-Encoding": "chunked"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(chunked, timeout=10)
    assert refused.value.code == 413


def test_home_is_0700_its_database_0600_and_the_log_file_holds_json_lines(dart: RunningDart) -> None:
    home = dart.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in [home / "dart.db", *home.glob("dart.db-*"), home / "credentials"]:
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert (home / "dart.db").exists()
    log_file = home / "logs" / "up.log"
    lines = log_file.read_text().splitlines()
    assert lines and all(json.loads(line)["level"] for line in lines)


def test_sigterm_stops_dart_up_cleanly(tmp_path: Path) -> None:
    running = RunningDart(tmp_path, None)
    running.stop()
    assert running.proc.returncode == 0
    assert "dart stopped" in (tmp_path / "dart.log").read_text()
