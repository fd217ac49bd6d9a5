"""The kombu delivery adapter: feeds a consumer the events the relay published to its group's queue.

Each message is a notification carrying the event envelope. The adapter skips an event this consumer already
handled (``consumer_records``), calls ``consumer.handle([event])``, records (consumer, event_id) and only
then acks. A failing message is republished with an attempt counter in its headers (works on AMQP and SQS
alike; on SQS the receive count of the current copy is added, so a message whose handler kills the worker is
counted too) and after ``max_retries`` attempts it goes to ``<prefix>-<group>-dead``: a poison message never
blocks the rest. Lost connections are re-established with backoff.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from kombu import Consumer, Message, Producer
from kombu.mixins import ConsumerMixin

from events.store import EventStore
from events.types import RecordedEvent
from services.commands.tracing import handling
from services.delivery.backoff import Backoff, Failures
from services.delivery.queues import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    QueueNames,
    connect,
    declare,
    is_sqs,
    queue,
)
from services.delivery.records import record_handled, was_handled

log = logging.getLogger("dart.delivery")

ORIGIN_HEADER = "x-dart-queue"


class EventConsumer(Protocol):
    """What the adapters need of a consumer (the orchestrator, the launcher ...)."""

    name: str
    types: Sequence[str]

    def handle(self, events: Sequence[RecordedEvent]) -> None: ...


class Unprocessable(Exception):
    """A message that no retry can help (not an envelope, an unknown call): it is dead-lettered at once."""


# ------------------------------------------------------------------------------------------- envelope
def message_text(message: Message) -> str:
    body = message.body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body).decode("utf-8")
    return str(body)


def decode_envelope(store: EventStore, envelope: Any) -> RecordedEvent:
    """The RecordedEvent in an envelope, upcast to this process's registry like a store read."""
    if not isinstance(envelope, dict):
        raise Unprocessable(f"message body is not an event envelope (a {type(envelope).__name__})")
    try:
        recorded_at = datetime.fromisoformat(envelope["recorded_at"])
        return store._decode(
            envelope["event_id"],
            envelope["stream_id"],
            int(envelope["stream_version"]),
            int(envelope["global_position"]),
            envelope["type"],
            int(envelope["schema_version"]),
            envelope["data"],
            envelope["metadata"],
            recorded_at,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unprocessable(f"message body is not a valid event envelope: {_short(exc)}") from exc


# ------------------------------------------------------------------------------------- consume loop
class ConsumerLoop(ConsumerMixin):
    """A kombu ConsumerMixin on one queue that outlives its broker: kombu reconnects, anything else escaping
    the consume loop restarts it after a backoff, and ``stop()`` is honoured while the broker is away.
    Subclasses say what to consume (``get_consumers``)."""

    def __init__(
        self,
        connection_url: str,
        transport_options: dict[str, Any] | None,
        queue_name: str,
        *,
        prefetch_count: int = 10,
        heartbeat: float = 30,
        min_backoff: float = 0.2,
        max_backoff: float = 30.0,
    ) -> None:
        self.url = connection_url
        self.transport_options = dict(transport_options or {})
        self.connection = connect(connection_url, transport_options, heartbeat=heartbeat)
        self.queue_name = queue_name
        self.prefetch_count = prefetch_count
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._sqs = is_sqs(connection_url)
        self.ready = threading.Event()  # set each time the consumer is (re)subscribed to its queue
        self._thread: threading.Thread | None = None

    def released(self) -> None:
        """Called whenever the consuming connection is let go (a failure, a reconnect, the end)."""

    # ------------------------------------------------------------------------------------- ConsumerMixin
    def on_connection_revived(self) -> None:
        self.released()

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kwargs: Any) -> None:
        self.ready.set()

    def on_consume_end(self, connection: Any, channel: Any) -> None:
        self.ready.clear()
        self.released()

    @contextmanager
    def establish_connection(self) -> Iterator[Any]:
        """kombu's, with this worker's backoff and a stop that is honoured while the broker is away."""
        with self.create_connection() as conn:
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                   interval_start=self.min_backoff, interval_step=1.0,
                                   interval_max=self.max_backoff, callback=self._raise_if_stopping)
            yield conn

    def _raise_if_stopping(self) -> None:
        if self.should_stop:
            raise _Stopping()

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        if self.should_stop:
            raise _Stopping() from exc  # leaves kombu's reconnect loop, which never looks at should_stop
        log.warning("%s: broker unavailable (%s); retrying in %.1fs", self.queue_name, exc, interval)

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        """Consume until ``should_stop``; connection errors reconnect (kombu), anything else escaping the
        consume loop (an SQS server answering 500 ...) is logged and retried with exponential backoff."""
        failures = Failures(Backoff(self.min_backoff, self.max_backoff))
        while not self.should_stop:
            started = time.monotonic()
            try:
                super().run(_tokens, **kwargs)
            except _Stopping:
                break
            except Exception as exc:
                if time.monotonic() - started > 10 * self.max_backoff:
                    failures.reset()  # it had worked for a while: a new run of failures starts short
                delay = failures.next_delay()
                log.warning("%s: consumer failed (%s: %s); restarting in %.1fs", self.queue_name,
                            type(exc).__name__, exc, delay, exc_info=log.isEnabledFor(logging.DEBUG))
                self.ready.clear()
                self.released()
                deadline = time.monotonic() + delay
                while not self.should_stop and time.monotonic() < deadline:
                    time.sleep(0.05)  # should_stop is kombu's plain flag, not an event to wait on

    def start(self) -> threading.Thread:
        """Consume in a daemon thread; ``stop()`` ends it."""
        self._thread = threading.Thread(target=self.run, name=f"consumer:{self.queue_name}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the consume loop to end (within about a second, or a long poll on SQS); with a timeout, wait
        that long for the thread ``start()`` made. True when it is no longer running."""
        self.should_stop = True
        if timeout is not None and self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()


# ------------------------------------------------------------------------------------ retrying worker
class QueueWorker(ConsumerLoop):
    """A consumer of one of dart's queues, with counted retries and a dead-letter queue.

    Subclasses implement ``process(message)``: return to ack, raise to retry (``Unprocessable``: dead-letter
    at once)."""

    def __init__(
        self,
        connection_url: str,
        transport_options: dict[str, Any] | None,
        queue_name: str,
        dead_queue_name: str,
        *,
        max_retries: int = 5,
        retry_delay: float = 1.0,
        **options: Any,
    ) -> None:
        if max_retries < 1:
            raise ValueError("max_retries must be at least 1")
        super().__init__(connection_url, transport_options, queue_name, **options)
        # Retried and dead-lettered copies go out on a connection of their own (kombu's
        # ConsumerProducerMixin does the same): a publish waiting for its confirm on the consuming channel
        # would dispatch the next deliveries from inside this message's handling.
        self._producer_connection: Any = None
        self.dead_queue_name = dead_queue_name
        self.max_retries = max_retries
        # A retried copy becomes visible after retry_delay * 2**(attempt-1) s (at most 900, SQS's longest
        # DelaySeconds). AMQP has no per-message delay without a plugin, so there the copy is retried at once.
        self.retry_backoff = Backoff(retry_delay, 900)
        self.counts = {"handled": 0, "skipped": 0, "retried": 0, "dead": 0}

    def get_consumers(self, Consumer: Any, channel: Any) -> list[Consumer]:
        declare(channel, [self.queue_name, self.dead_queue_name])
        return [Consumer(queues=[queue(self.queue_name)], on_message=self._on_message,
                         prefetch_count=self.prefetch_count)]

    def released(self) -> None:
        self._drop_producer()  # the producer's connection may be broken too

    # ---------------------------------------------------------------------------------------- messages
    def process(self, message: Message) -> None:
        raise NotImplementedError

    def retry_headers(self, message: Message) -> dict[str, Any]:
        """Headers to keep on a retried copy besides the attempt counter (subclasses add theirs)."""
        return {}

    def attempts(self, message: Message) -> int:
        """How many times this message has been delivered, this delivery included."""
        headers = message.headers or {}
        try:
            earlier = int(headers.get(ATTEMPTS_HEADER, 0))
        except (TypeError, ValueError):
            earlier = 0
        this_copy = 1
        sqs_message = message.delivery_info.get("sqs_message") if self._sqs else None
        if sqs_message:
            try:
                this_copy = int(sqs_message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
            except (TypeError, ValueError):
                this_copy = 1
        elif headers.get("x-delivery-count") is not None:  # RabbitMQ quorum queues count redeliveries
            this_copy = int(headers["x-delivery-count"]) + 1
        return earlier + max(this_copy, 1)

    def _on_message(self, message: Message) -> None:
        attempts = self.attempts(message)
        try:
            self.process(message)
        except Unprocessable as exc:
            self._dead_letter(message, exc, attempts)
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried or dead-lettered, and logged there
            if attempts >= self.max_retries:
                self._dead_letter(message, exc, attempts)
            else:
                self._retry(message, exc, attempts)
        message.ack()

    def _producer(self) -> Producer:
        if self._producer_connection is None:
            conn = connect(self.url, self.transport_options)
            conn.ensure_connection(max_retries=1)
            self._producer_connection = conn
        return Producer(self._producer_connection.default_channel)

    def _drop_producer(self) -> None:
        conn, self._producer_connection = self._producer_connection, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # closing a connection the broker already dropped
                log.debug("closing a broken producer connection failed", exc_info=True)

    def _republish(self, message: Message, queue_name: str, headers: dict[str, Any], delay: int = 0) -> None:
        """Publish a copy (confirmed); on failure the message stays unacked and comes back later."""
        properties: dict[str, Any] = {}
        if self._sqs and delay > 0:
            properties["delay_seconds"] = delay
        message_id = (message.properties or {}).get("message_id")
        if message_id:
            properties["message_id"] = message_id
        try:
            self._producer().publish(
                message.body,
                exchange="",
                routing_key=queue_name,
                content_type=message.content_type or "application/octet-stream",
                content_encoding=message.content_encoding or "binary",
                headers=headers,
                delivery_mode=2,
                retry=False,
                **properties,
            )
        except BaseException:
            self._drop_producer()
            raise

    def _retry(self, message: Message, exc: Exception, attempts: int) -> None:
        log.warning("%s: message failed (attempt %d of %d): %s", self.queue_name, attempts,
                    self.max_retries, _short(exc), exc_info=exc)
        headers = {**(message.headers or {}), **self.retry_headers(message),
                   ATTEMPTS_HEADER: attempts, ERROR_HEADER: _short(exc)}
        delay = int(self.retry_backoff.delay(attempts))
        self._republish(message, self.queue_name, headers, delay)
        self.counts["retried"] += 1

    def _dead_letter(self, message: Message, exc: Exception, attempts: int) -> None:
        log.error("%s: message dead-lettered to %s after %d attempt(s): %s: %s", self.queue_name,
                  self.dead_queue_name, attempts, type(exc).__name__, exc,
                  exc_info=None if isinstance(exc, Unprocessable) else exc)
        headers = {**(message.headers or {}), **self.retry_headers(message),
                   ATTEMPTS_HEADER: attempts, ERROR_HEADER: _short(exc), ORIGIN_HEADER: self.queue_name}
        self._republish(message, self.dead_queue_name, headers)
        self.counts["dead"] += 1


class _Stopping(Exception):
    """Raised from kombu's reconnect loop once the worker was asked to stop."""


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


# ------------------------------------------------------------------------------------ event consumers
class KombuConsumer(QueueWorker):
    """Feeds ``consumer`` (``.name``, ``.types``, ``.handle(events)``) from the queue ``<prefix>-<name>``."""

    def __init__(
        self,
        consumer: EventConsumer,
        store: EventStore,
        connection_url: str,
        transport_options: dict[str, Any] | None,
        prefix: str = "dart",
        max_retries: int = 5,
        **options: Any,
    ) -> None:
        names = QueueNames(prefix)
        super().__init__(connection_url, transport_options, names.group(consumer.name),
                         names.dead(consumer.name), max_retries=max_retries, **options)
        self.consumer = consumer
        self.store = store
        self._types = frozenset(consumer.types)

    def process(self, message: Message) -> None:
        try:
            envelope = json.loads(message_text(message))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Unprocessable(f"message body is not JSON: {exc}") from exc
        event = decode_envelope(self.store, envelope)
        if envelope.get("data_omitted"):  # too large for a queue: the relay sent the envelope without data
            stored = self.store.read_by_ids([event.event_id])
            if not stored:
                raise LookupError(f"event {event.event_id} of an envelope without data is not in the store")
            event = stored[0]
        if event.type not in self._types:
            log.debug("%s: ignoring %s %s (not a handled type)", self.consumer.name, event.type,
                      event.event_id)
            return
        if was_handled(self.store, self.consumer.name, event.event_id):
            self.counts["skipped"] += 1
            return
        with handling(self.consumer.name, event):
            self.consumer.handle([event])
        record_handled(self.store, self.consumer.name, event.event_id)
        self.counts["handled"] += 1
