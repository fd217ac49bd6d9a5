"""``GET /log/stream?after=&type=&stream=``: the global log as it grows, as Server-Sent Events, so a page
follows what happens without asking again.

Each event is one message: ``id:`` its global position, ``event:`` its type, ``data:`` the same JSON as an item
of ``GET /log``. A client that reconnects sends ``Last-Event-ID`` (browsers' EventSource does it by itself) and
gets every event after that position, none twice: the store's positions are in commit order for a catch-up
reader (events/store.py), so reading "after N" loses nothing.

The stream only reads: each batch is one short read of the store on a pooled connection, released before a
byte is written, so a slow or stalled client holds no lock, transaction or connection and cannot hold up
appends. A request whose Accept does not name text/event-stream (EventSource's does) gets what is there now,
one batch, and the response ends. Between batches a stream waits for this process's appends (the store's signal) or polls (appends of other
processes), and writes a comment line every ``keepalive`` seconds, which is also how a client that went away
is noticed (the write fails, the server closes the generator). Each stream holds one server thread, so a
process serves at most ``max_streams`` at once (a 503 with Retry-After past that) and ends each after
``lifetime`` seconds: the client reconnects with Last-Event-ID and loses nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import falcon

from events.store import EventStore
from events.types import RecordedEvent
from services.api.listing import int_param
from services.domain.errors import BadRequest
from services.domain.roles import redact_key_event

MAX_POSITION = 2**63 - 1
# Streams one process serves at once, each holding a server thread: half of what a `dart api` worker has by
# default (8 threads), a quarter of `dart up`'s 16, so requests always find threads.
MAX_STREAMS = 4
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def frame(event: RecordedEvent) -> bytes:
    """One Server-Sent Events message (JSON has no raw newline, so ``data`` is one line)."""
    data = _encode(redact_key_event(event.as_dict()))  # never a key's salt or secret hash, as /log
    return f"id: {event.global_position}\nevent: {event.type}\ndata: {data}\n\n".encode()


class LogStream:
    def __init__(self, store: EventStore, *, keepalive: float = 15.0, poll: float = 1.0, lifetime: float = 300.0,
                 max_streams: int = MAX_STREAMS, batch: int = 200) -> None:
        self.store = store
        self.keepalive = keepalive
        self.poll = poll
        self.lifetime = lifetime
        self.batch = batch
        self._slots = threading.BoundedSemaphore(max_streams)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        after = self._start(req)
        types = _csv(req.get_param("type"))
        streams = _csv(req.get_param("stream"))
        if "text/event-stream" not in (req.get_header("Accept") or ""):
            # Not asked for a stream (a plain HTTP client, a test client that reads a body to its end): what
            # is there now, one batch, and the response ends.
            _event_stream(resp)
            resp.data = b"".join(frame(e) for e in self.store.read_all(after, self.batch, types=types,
                                                                        streams=streams))
            return
        if not self._slots.acquire(blocking=False):
            raise falcon.HTTPServiceUnavailable(
                description="stream: this server is already serving its most log streams; try again shortly",
                retry_after=5)
        _event_stream(resp)
        resp.set_header("X-Accel-Buffering", "no")  # a proxy in front must not hold the messages back
        resp.stream = StreamBody(self._messages(after, types, streams), self._slots)

    def _start(self, req: falcon.Request) -> int:
        """Where to start: after ``Last-Event-ID`` (a reconnecting client's) or else after ``after``."""
        last = req.get_header("Last-Event-ID")
        if last is None or last == "":
            return int_param(req, "after", 0, 0, MAX_POSITION)
        if not last.isascii() or not last.isdigit() or len(last) > 19 or int(last) > MAX_POSITION:
            raise BadRequest(f"Last-Event-ID: {last[:40]!r} is not a global position (a non-negative integer)")
        return int(last)

    def _messages(self, after: int, types: list[str] | None, streams: list[str] | None) -> Iterator[bytes]:
        yield b"retry: 2000\n: dart log stream\n\n"  # sent at once: the client knows it is connected
        position = after
        now = time.monotonic()
        deadline, quiet_since = now + self.lifetime, now
        while True:
            events = self.store.read_all(position, self.batch, types=types, streams=streams)
            if events:
                position = events[-1].global_position
                yield b"".join(frame(e) for e in events)
                quiet_since = time.monotonic()
                if len(events) == self.batch:
                    continue  # more are waiting: read on before anything else
            now = time.monotonic()
            if now >= deadline:
                return
            if now - quiet_since >= self.keepalive:
                yield b": keep-alive\n\n"
                quiet_since = now
            wait = min(self.poll, deadline - now, max(0.0, self.keepalive - (now - quiet_since)))
            self.store.wait_for_append(position, max(wait, 0.01), types if not streams else None)


class StreamBody:
    """The response body: the messages, holding one of the stream slots until the server closes it (at the
    end, or when the client went away), whether or not it was ever iterated."""

    def __init__(self, messages: Iterator[bytes], slots: threading.BoundedSemaphore) -> None:
        self._messages = messages
        self._slots: threading.BoundedSemaphore | None = slots

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._messages)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            self._messages.close()  # type: ignore[attr-defined]
            slots.release()


def _event_stream(resp: falcon.Response) -> None:
    resp.content_type = "text/event-stream; charset=utf-8"
    resp.set_header("Cache-Control", "no-cache")


def _csv(raw: str | None) -> list[str] | None:
    values = [v.strip() for v in (raw or "").split(",") if v.strip()]
    return values or None
