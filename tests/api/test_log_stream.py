"""The log stream's own loop (services/api/log_stream.py) on a real store, without a server: keep-alive comments
while nothing happens, an append streamed at once, the end after its lifetime, and its slot freed whether the
body was read to the end, closed midway or never started. tests/e2e/test_log_stream.py runs it under
waitress and gunicorn."""

from __future__ import annotations

import threading
import uuid

from events.streams.event import EventCreated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.api.log_stream import LogStream, StreamBody
from tests.api.conftest import Api, InProcessDart


def _append(dart: InProcessDart, name: str) -> int:
    recorded = dart.store.append(StreamAppend(f"event-{uuid.uuid4().hex[:10].upper()}", ExpectedVersion.NO_STREAM,
                                              [NewEvent(EventCreated({"name": name}), Metadata(actor="t"))]))
    return recorded[-1].global_position


def test_keep_alives_then_an_append_at_once_then_the_end(dart: InProcessDart) -> None:
    stream = LogStream(dart.store, keepalive=0.05, poll=0.02, lifetime=1.5)
    head = dart.store.head_position()
    messages = stream._messages(head, ["EventCreated"], None)
    assert next(messages).startswith(b"retry: 2000\n")
    assert next(messages) == b": keep-alive\n\n"  # nothing happened: a comment, so a gone client is noticed
    threading.Timer(0.1, _append, (dart, "streamed")).start()
    chunk = next(messages)
    while chunk == b": keep-alive\n\n":
        chunk = next(messages)
    position = dart.store.head_position()
    assert chunk.startswith(f"id: {position}\nevent: EventCreated\ndata: {{".encode()) and b'"streamed"' in chunk
    assert chunk.endswith(b"\n\n") and chunk.count(b"\n") == 4  # one message; the JSON on one line
    rest = list(messages)  # the lifetime ends the stream; the client reconnects with Last-Event-ID
    assert set(rest) <= {b": keep-alive\n\n"}


def test_a_slot_is_freed_however_the_body_ends(dart: InProcessDart) -> None:
    slots = threading.BoundedSemaphore(1)
    stream = LogStream(dart.store, keepalive=0.05, poll=0.02, lifetime=0.1)
    for read in (0, 1, None):  # never started, closed after one chunk, read to the end
        assert slots.acquire(blocking=False)
        body = StreamBody(stream._messages(0, None, None), slots)
        if read is None:
            list(body)
        else:
            for _ in range(read):
                next(body)
            body.close()
        assert slots.acquire(blocking=False)  # freed
        slots.release()
        body.close()  # a second close frees nothing twice (a BoundedSemaphore would raise)


def test_without_accept_event_stream_the_answer_is_what_is_there_now(api: Api, dart: InProcessDart) -> None:
    first = _append(dart, "one-shot")
    status, text = api.request("GET", "/log/stream", params={"after": first - 1})
    assert status == 200 and text.startswith(f"id: {first}\nevent: EventCreated\n")
    status, body = api.request("GET", "/log/stream", headers={"Last-Event-ID": "-1"})
    assert status == 400 and body["error_message"].startswith("Last-Event-ID:")
    status, body = api.request("GET", "/log/stream", params={"after": "x"})
    assert status == 400 and body["error_message"].startswith("after:")
