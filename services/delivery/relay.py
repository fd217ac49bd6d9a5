"""The relay: follows the log in global order from its checkpoint and publishes each event's envelope to the
queues of the consumer groups that handle its type and to the outside readers' queues (design.md §4).

At least once: the checkpoint moves only after the broker confirmed every publish of the batch (AMQP
publisher confirms; SQS SendMessageBatch answers once the messages are stored), so a relay killed mid-batch
publishes the whole batch again when it restarts. While the broker (or the database) is down the relay logs,
backs off and retries; it never skips an event. Every message goes through the default exchange to a queue
the relay declared itself (on SQS a message sent to a named exchange for an undeclared queue is dropped).

Run one relay per database. A second one is harmless (its checkpoint moves are compare-and-set, so it only
publishes duplicates) but useless.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kombu import Connection, Producer

from events.checkpoints import advance_checkpoint, read_checkpoint
from events.store import EventStore
from events.subscription import FALLBACK_POLL, STOP_CHECK
from events.types import RecordedEvent
from services.delivery.backoff import Backoff, Failures
from services.delivery.queues import QueueNames, connect, declare, is_sqs

log = logging.getLogger("dart.relay")

RELAY_CHECKPOINT = "relay"
CONTENT_TYPE = "application/json"


# SQS takes bodies up to 256 KiB, and a retried copy is framed and base64-encoded by kombu (x4/3 and more).
MAX_ENVELOPE_BYTES = 100_000


def envelope_json(event: RecordedEvent) -> str:
    """The documented envelope (design.md §3) as the message body. An envelope too large for a queue is sent
    without its payload (``"data": null, "data_omitted": true``); a reader fetches the event by id."""
    body = json.dumps(event.as_dict(), separators=(",", ":"))
    if len(body.encode("utf-8")) > MAX_ENVELOPE_BYTES:
        body = json.dumps({**event.as_dict(), "data": None, "data_omitted": True}, separators=(",", ":"))
    return body


class PublishFailed(Exception):
    """The broker did not take every message of a batch (nack, unroutable, batch entry failed, timeout)."""


Outgoing = tuple[str, str, str]  # (queue name, message id, body)


class _Publisher(Protocol):
    def publish(self, messages: Sequence[Outgoing]) -> None: ...


class _AmqpPublisher:
    """Publishes a batch with pipelined publisher confirms: every message goes out, then the relay waits for
    the broker's acks. One confirm at a time costs a disk flush each (~4-8 ms with persistent messages);
    pipelined, RabbitMQ flushes many at once. ``mandatory``: a message no queue took comes back as a failure
    (a queue deleted under the relay) instead of vanishing."""

    def __init__(self, conn: Connection, channel: Any, timeout: float) -> None:
        self.conn = conn
        self.channel = channel
        self.timeout = timeout
        self.producer = Producer(channel)
        self._sent = 0  # delivery tags are numbered from 1 per channel in confirm mode
        self._pending: set[int] = set()
        self._failed: list[str] = []
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        channel.confirm_select()

    def _settle(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._pending = {t for t in self._pending if t > tag}
        else:
            self._pending.discard(tag)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._failed.append(f"broker nacked delivery {tag}")
        self._settle(tag, multiple)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self._failed.append(f"unroutable to queue {routing_key!r}: {exc}")

    def publish(self, messages: Sequence[Outgoing]) -> None:
        self._failed.clear()
        for queue_name, message_id, body in messages:
            self.producer.publish(body, exchange="", routing_key=queue_name, mandatory=True,
                                  content_type=CONTENT_TYPE, content_encoding="utf-8", delivery_mode=2,
                                  message_id=message_id, retry=False)
            self._sent += 1
            self._pending.add(self._sent)
        deadline = time.monotonic() + self.timeout
        while self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishFailed(f"{len(self._pending)} publishes not confirmed in {self.timeout}s")
            try:
                self.conn.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue
        if self._failed:
            raise PublishFailed("; ".join(self._failed[:5]))


class _SqsPublisher:
    """Sends with SendMessageBatch (ten at a time), the body being the envelope JSON itself: consumers read
    it through kombu, outside readers with any SQS client. SendMessageBatch returns once SQS stored them."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.client = channel.sqs()
        self._urls: dict[str, str] = {}

    def _url(self, queue_name: str) -> str:
        if queue_name not in self._urls:
            sqs_name = self.channel.canonical_queue_name(queue_name)
            self._urls[queue_name] = self.client.get_queue_url(QueueName=sqs_name)["QueueUrl"]
        return self._urls[queue_name]

    def publish(self, messages: Sequence[Outgoing]) -> None:
        by_queue: dict[str, list[str]] = {}
        for queue_name, _, body in messages:
            by_queue.setdefault(queue_name, []).append(body)
        for queue_name, bodies in by_queue.items():
            url = self._url(queue_name)
            for start in range(0, len(bodies), 10):
                chunk = bodies[start:start + 10]
                entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
                answer = self.client.send_message_batch(QueueUrl=url, Entries=entries)
                if answer.get("Failed"):
                    reasons = {f.get("Code", "?") + ": " + f.get("Message", "") for f in answer["Failed"]}
                    raise PublishFailed(f"SQS refused {len(answer['Failed'])} of {len(entries)} messages "
                                        f"to {queue_name}: {'; '.join(sorted(reasons))}")


class Relay:
    """Publishes committed events to their queues.

    ``routes`` maps a consumer group (its queue is ``<prefix>-<group>``) to the event types it handles;
    ``outside`` maps an outside reader (queue ``<prefix>-out-<reader>``) to the types it wants, or None for
    every event. On both transports a message's body is the envelope JSON itself (on SQS with no kombu
    framing), so outside readers need no kombu; AMQP messages also carry ``message_id`` = the event id.
    """

    def __init__(
        self,
        store: EventStore,
        connection_url: str,
        transport_options: dict[str, Any] | None,
        routes: Mapping[str, Sequence[str]],
        outside: Mapping[str, Sequence[str] | None] | None = None,
        prefix: str = "dart",
        *,
        batch_size: int = 200,
        poll_interval: float = 0.5,
        min_backoff: float = 0.2,
        max_backoff: float = 30.0,
        checkpoint: str = RELAY_CHECKPOINT,
        confirm_timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.url = connection_url
        self.transport_options = dict(transport_options or {})
        self.names = QueueNames(prefix)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.checkpoint = checkpoint
        self._by_type: dict[str, list[str]] = {}
        self._every: list[str] = []
        for group, types in routes.items():
            for type_name in types:
                self._route(type_name, self.names.group(group))
        for reader, wanted in (outside or {}).items():
            name = self.names.outside(reader)
            if wanted is None:
                self._every.append(name)
            else:
                for type_name in wanted:
                    self._route(type_name, name)
        self.queues = list(dict.fromkeys([*(q for qs in self._by_type.values() for q in qs), *self._every]))
        # With no reader of every event, only routed types are read; the checkpoint still moves past the rest.
        self._types = None if self._every else sorted(self._by_type)
        self._sqs = is_sqs(connection_url)
        self.confirm_timeout = confirm_timeout
        self._conn: Connection | None = None
        self._publisher: _Publisher | None = None
        self.published = 0  # messages confirmed by the broker since start (for logs and tests)
        self._seen = 0  # the checkpoint after the last batch

    def _route(self, type_name: str, queue_name: str) -> None:
        targets = self._by_type.setdefault(type_name, [])
        if queue_name not in targets:
            targets.append(queue_name)

    def targets(self, type_name: str) -> list[str]:
        """The queues an event of this type is published to."""
        return [*self._by_type.get(type_name, []), *self._every]

    # ------------------------------------------------------------------------------------------ broker
    def _connect(self) -> _Publisher:
        if self._publisher is not None:
            return self._publisher
        options = dict(self.transport_options)
        if not self._sqs:
            options["confirm_publish"] = False  # confirms are pipelined per batch by _AmqpPublisher instead
        conn = connect(self.url, options)
        try:
            conn.connect()
            channel = conn.channel()
            declare(channel, self.queues)  # the producer declares every queue it publishes to (issue 4 notes)
            publisher: _Publisher = (_SqsPublisher(channel) if self._sqs
                                     else _AmqpPublisher(conn, channel, self.confirm_timeout))
        except BaseException:
            _close_quietly(conn)
            raise
        self._conn, self._publisher = conn, publisher
        log.info("relay connected to %s; %d queues declared", conn.as_uri(), len(self.queues))
        return publisher

    def _disconnect(self) -> None:
        conn, self._conn, self._publisher = self._conn, None, None
        if conn is not None:
            _close_quietly(conn)

    # --------------------------------------------------------------------------------------- following
    def position(self) -> int:
        with self.store.engine.connect() as conn:
            return read_checkpoint(conn, self.checkpoint)

    def run_once(self) -> int:
        """Publish the next batch and move the checkpoint past it; returns how many events were read."""
        position = self.position()
        head = self.store.head_position()
        events = self.store.read_all(position, self.batch_size, types=self._types)
        if len(events) == self.batch_size:
            new_position = events[-1].global_position
        else:
            # Everything up to the head read before this batch is committed and was seen (see subscription).
            new_position = max(head, events[-1].global_position if events else position)
        self._seen = position
        if new_position == position:
            return 0
        messages: list[Outgoing] = []
        for event in events:
            targets = self.targets(event.type)
            if targets:
                body = envelope_json(event)
                messages += [(queue_name, str(event.event_id), body) for queue_name in targets]
        if messages:
            self._connect().publish(messages)  # returns once the broker confirmed every message
            self.published += len(messages)
        with self.store.transaction() as conn:
            if not advance_checkpoint(conn, self.checkpoint, position, new_position):
                log.warning("relay checkpoint %r moved under this relay (another relay runs?)",
                            self.checkpoint)
                return len(events)
        self._seen = new_position
        return len(events)

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set. Broker or database failures are logged and retried with
        exponential backoff; the relay resumes at its checkpoint."""
        failures = Failures(Backoff(self.min_backoff, self.max_backoff))
        try:
            while not stop.is_set():
                try:
                    read = self.run_once()
                except Exception as exc:  # the broker or the database is away: retry, never skip
                    delay = failures.next_delay()
                    log.warning("relay failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay,
                                exc_info=log.isEnabledFor(logging.DEBUG))
                    self._disconnect()
                    stop.wait(delay)
                    continue
                failures.reset()
                if read < self.batch_size:
                    # On PostgreSQL every append's NOTIFY wakes the relay (events/pg_listen.py) and the poll is
                    # a fallback; elsewhere only this process's appends signal and the poll finds the rest.
                    interval = (max(self.poll_interval, FALLBACK_POLL) if self.store.wakes_across_processes
                                else self.poll_interval)
                    deadline = time.monotonic() + interval
                    while not stop.is_set() and time.monotonic() < deadline:
                        if self.store.wait_for_append(self._seen, min(STOP_CHECK, interval), self._types):
                            break
        finally:
            self._disconnect()

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="relay", daemon=True)
        thread.start()
        return thread, stop

    def close(self) -> None:
        self._disconnect()


def _close_quietly(conn: Connection) -> None:
    try:
        conn.release()
    except Exception:  # closing a connection the broker already dropped
        log.debug("closing a broken broker connection failed", exc_info=True)
