"""``GET /api/1/log/stream`` (Server-Sent Events) against real servers: `dart up` (waitress) and `dart api`
(gunicorn's threaded workers) on the same SQLite store. Events arrive as they are appended; a client that
disconnects and comes back with Last-Event-ID gets every later event exactly once; clients that never read
hold up no append; the streams a process serves are bounded."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.harness.api_client import Api
from bench.harness.stacks import _base_env, _terminate, _wait_healthy
from services.api.log_stream import MAX_STREAMS
from tests.e2e.stacks import KEY, SECRET, RunningDart, free_port

AUTH = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()


class Stream:
    """One SSE connection, read message by message (``(id, event, data)``; comments are skipped)."""

    def __init__(self, base: str, query: str = "", last_event_id: str | None = None, timeout: float = 20.0) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        headers = {"Authorization": AUTH, "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", "/api/1/log/stream" + query, headers=headers)
        self.response = self.conn.getresponse()
        self.comments = 0

    def messages(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline()
            if not line:
                return
            text = line.decode().rstrip("\n")
            if text == "":
                if "data" in fields:
                    yield int(fields["id"]), fields["event"], json.loads(fields["data"])
                fields = {}
            elif text.startswith(":"):
                self.comments += 1
            else:
                name, _, value = text.partition(": ")
                fields[name] = value

    def close(self) -> None:
        self.conn.close()


def take_until(stream: Stream, names: set[str]) -> list[tuple[int, str, dict[str, Any]]]:
    """Messages until every ``EventCreated`` of these event names has arrived."""
    seen: list[tuple[int, str, dict[str, Any]]] = []
    missing = set(names)
    for message in stream.messages():
        seen.append(message)
        if message[1] == "EventCreated":
            missing.discard(message[2]["data"]["data"]["name"])
        if not missing:
            return seen
    raise AssertionError(f"the stream ended with {len(missing)} events missing")


def create_events(api: Api, names: list[str]) -> None:
    for name in names:
        status, body = api.request("POST", "/event", {"data": {"name": name}})
        assert status == 200, body


def log_after(api: Api, position: int) -> list[dict[str, Any]]:
    status, body = api.request("GET", "/log", params={"after": position, "limit": 10000})
    assert status == 200
    return body["results"]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    running = RunningDart(tmp_path_factory.mktemp("dart-stream"), None)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def gunicorn(up: RunningDart) -> Iterator[str]:
    """`dart api` (gunicorn, one worker, threads) on `dart up`'s own SQLite store: its streams see appends of
    another process only by reading the store."""
    port = free_port()
    env = _base_env(up.home)
    log = up.home / "api.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.runtime.cli", "api", "--port", str(port),
                                 "--workers", "1", "--threads", "8"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, lambda: proc.poll() is None, log, "dart api")
        yield base
    finally:
        _terminate(proc, 30)


def names(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"sse_{tag}_{i}" for i in range(n)]


def test_events_arrive_as_they_are_appended_as_the_log_serves_them(up: RunningDart) -> None:
    api = up.api()
    start = up.head_position()
    stream = Stream(up.base, f"?after={start}")
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    wanted = names(20)
    writer = threading.Thread(target=create_events, args=(api, wanted))
    writer.start()  # appended while the stream is open
    got = take_until(stream, set(wanted))
    writer.join()
    stream.close()
    positions = [p for p, _, _ in got]
    assert positions == sorted(set(positions))
    served = {e["global_position"]: e for e in log_after(api, start)}
    for position, event_type, data in got:
        assert data == served[position] and event_type == served[position]["type"]
    assert positions == [p for p in served if p <= positions[-1]]  # every event, none skipped


def test_a_client_that_reconnects_with_last_event_id_loses_nothing_and_gets_nothing_twice(up: RunningDart) -> None:
    api = up.api()
    start = up.head_position()
    first, second = names(10), names(10)
    stream = Stream(up.base, f"?after={start}&type=EventCreated")
    create_events(api, first)
    got = take_until(stream, set(first))
    stream.close()  # the client goes away; more happens meanwhile
    create_events(api, second)
    # EventSource keeps the URL it was given (after=start) and adds the last id it saw
    again = Stream(up.base, f"?after={start}&type=EventCreated", last_event_id=str(got[-1][0]))
    got += take_until(again, set(second))
    again.close()
    created = [e["global_position"] for e in log_after(api, start) if e["type"] == "EventCreated"]
    assert [p for p, _, _ in got] == created  # all of them, once each, in order
    assert {d["data"]["data"]["name"] for _, _, d in got} == set(first) | set(second)


def test_streams_under_gunicorn_see_another_processes_appends(up: RunningDart, gunicorn: str) -> None:
    start = up.head_position()
    stream = Stream(gunicorn, f"?after={start}&stream=")
    wanted = names(5)
    create_events(up.api(), wanted)  # appended by dart up, streamed by dart api
    got = take_until(stream, set(wanted))
    stream.close()
    assert [d["global_position"] for _, _, d in got] == [e["global_position"] for e in log_after(up.api(), start)][
        :len(got)]
    request = urllib.request.Request(f"{gunicorn}/api/1/log/stream?after={start}", headers={"Authorization": AUTH})
    with urllib.request.urlopen(request, timeout=10) as answer:  # no Accept: what is there now, then the end
        assert f"id: {got[0][0]}\n" in answer.read().decode()


def test_clients_that_never_read_hold_up_no_append_and_streams_are_bounded(up: RunningDart) -> None:
    api = up.api()
    stalled = []
    for _ in range(MAX_STREAMS):  # the most a process serves; none of them reads a byte
        sock = socket.create_connection(("127.0.0.1", up.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET /api/1/log/stream?after=0 HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        stalled.append(sock)
    try:
        start = up.head_position()
        wanted = names(50)
        create_events(api, wanted)  # each answered while the streams sit unread on a full log
        assert up.head_position() >= start + 50
        status, body = api.request("GET", "/log/stream", headers={"Accept": "text/event-stream"})
        assert status == 503 and body["error_message"].startswith("stream:")
    finally:
        for sock in stalled:
            sock.close()
    create_events(api, names(1))  # the servers' next write meets the closed sockets and frees their slots
    for _ in range(100):
        extra = Stream(up.base, f"?after={up.head_position()}", timeout=5)
        if extra.response.status == 200:
            extra.close()
            break
        extra.response.read()
        extra.close()
        threading.Event().wait(0.2)
    else:
        raise AssertionError("the stream slots of closed clients were never freed")


def test_a_bad_last_event_id_is_a_400_naming_it(up: RunningDart) -> None:
    stream = Stream(up.base, last_event_id="12x")
    assert stream.response.status == 400
    assert json.loads(stream.response.read())["error_message"].startswith("Last-Event-ID:")
    stream.close()


def test_log_files_name_no_error(up: RunningDart) -> None:
    errors = [line for line in Path(up.home / "dart.log").read_text().splitlines() if "unhandled error" in line]
    assert not errors
