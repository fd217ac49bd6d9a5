"""Production delivery with real brokers: RabbitMQ (amqp://) and an SQS server (moto, sqs://).

The relay publishes every committed event to exactly the queues routed to its type, at least once, across a
SIGKILL of its process; the kombu adapter applies each event once (consumer_records), dead-letters a poison
message after max_retries without blocking the rest, and both ride out a broker outage; the inbox takes the
original external formats (raw JSON, base64 JSON, SNS envelope).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Producer

from bench.harness.moto import moto_server
from events.checkpoints import read_checkpoint, set_checkpoint
from events.store import EventStore
from events.streams import default_registry
from events.streams.dataset import DatasetCreated
from events.streams.event import EventCreated, EventDeleted, EventUpdated
from events.subscription import wait_until
from events.types import ExpectedVersion, RecordedEvent, StreamAppend
from services.delivery.inbox import INBOX_CONSUMER, InboxConsumer, parse_inbox_message
from services.delivery.kombu_consumer import KombuConsumer
from services.delivery.queues import ATTEMPTS_HEADER, QueueNames, queue, transport_options_for
from services.delivery.records import handled_event_ids
from services.delivery.relay import RELAY_CHECKPOINT, Relay
from tests.support.world import SUCCEEDS, World

REPO = Path(__file__).resolve().parents[2]
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"
BROKERS = ("amqp", "sqs")


# --------------------------------------------------------------------------------------------- brokers
def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    if not _port_open("127.0.0.1", 5672) and shutil.which("rabbitmq-server"):
        subprocess.run(["rabbitmq-server", "-detached"], check=False, capture_output=True)
        wait_until(lambda: _port_open("127.0.0.1", 5672), 60, 0.5)
    if not _port_open("127.0.0.1", 5672):
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672 (start it with `rabbitmq-server -detached`)")
    return RABBIT_URL


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@dataclass
class Broker:
    kind: str
    url: str
    options: dict[str, Any]
    prefix: str
    queues: set[str] = field(default_factory=set)

    @property
    def names(self) -> QueueNames:
        return QueueNames(self.prefix)

    def connection(self) -> Connection:
        options = dict(self.options)
        if self.kind == "amqp":
            options["confirm_publish"] = True
        return Connection(self.url, transport_options=options)

    def drain(self, name: str, until: Callable[[list[Any]], bool], timeout: float = 30) -> list[Any]:
        """Messages consumed (and acked) from a queue until ``until(messages)`` holds or the timeout, and then
        whatever else is there (until a poll comes back empty), so nothing unexpected goes unseen."""
        self.queues.add(name)
        got: list[Any] = []
        with self.connection() as conn:
            channel = conn.channel()
            bound = queue(name)(channel)
            bound.declare()

            def on_message(message: Any) -> None:
                got.append(message)
                message.ack()

            with conn.Consumer(bound, on_message=on_message, prefetch_count=50):
                deadline = time.monotonic() + timeout
                while not until(got) and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=0.5)
                    except TimeoutError:
                        pass
                while time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=0.5)
                    except TimeoutError:
                        break
        return got

    def publish_raw(self, name: str, body: str, message_id: str | None = None) -> None:
        """What an external producer does: the body as it is, no kombu framing on SQS."""
        self.queues.add(name)
        with self.connection() as conn:
            channel = conn.channel()
            queue(name)(channel).declare()
            if self.kind == "sqs":
                client = channel.sqs()
                url = client.get_queue_url(QueueName=name)["QueueUrl"]
                client.send_message(QueueUrl=url, MessageBody=body)
            else:
                Producer(channel).publish(body, exchange="", routing_key=name, content_type="text/plain",
                                          content_encoding="utf-8", message_id=message_id, retry=False)

    def cleanup(self) -> None:
        try:
            with self.connection() as conn:
                channel = conn.channel()
                for name in self.queues:
                    try:
                        queue(name)(channel).delete()
                    except Exception:  # noqa: BLE001, S110 - a queue that was never created
                        pass
        except Exception:  # noqa: BLE001, S110 - the broker went away: nothing to clean
            pass


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    if request.param == "amqp":
        url = request.getfixturevalue("rabbit_url")
        made = Broker("amqp", url, transport_options_for(url), prefix)
    else:
        port = request.getfixturevalue("sqs_endpoint").rsplit(":", 1)[1]
        url = f"sqs://testing:testing@127.0.0.1:{port}"
        # Short polls and a short visibility timeout: kombu's default of 1,800 s would hide a lost message.
        options = transport_options_for(url, wait_time_seconds=1, polling_interval=0.05, visibility_timeout=5)
        made = Broker("sqs", url, options, prefix)
    yield made
    made.cleanup()


# -------------------------------------------------------------------------------------------- helpers
class Recorder:
    """A consumer that records what it was handed; ``poison`` ids raise every time."""

    def __init__(self, name: str, types: Sequence[str], poison: set[uuid.UUID] | None = None) -> None:
        self.name = name
        self.types = list(types)
        self.poison = poison or set()
        self.calls: list[uuid.UUID] = []
        self.call_times: list[float] = []
        self.handled: list[uuid.UUID] = []
        self.events: list[RecordedEvent] = []
        self._lock = threading.Lock()

    def handle(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            with self._lock:
                self.calls.append(event.event_id)
                self.call_times.append(time.monotonic())
            if event.event_id in self.poison:
                raise RuntimeError(f"poison {event.event_id}")
            with self._lock:
                self.handled.append(event.event_id)
                self.events.append(event)


def append_mixed(store: EventStore, count: int) -> list[RecordedEvent]:
    """``count`` events cycling through four types (EventCreated, EventUpdated, EventDeleted,
    DatasetCreated), ten to an append."""
    makers = (
        lambda i: (f"event-e{i}", EventCreated({"name": f"e{i}", "state": "ACTIVE"})),
        lambda i: (f"event-e{i}", EventUpdated({"state": "INACTIVE"})),
        lambda i: (f"event-e{i}", EventDeleted()),
        lambda i: (f"dataset-d{i}", DatasetCreated({"name": f"d{i}"})),
    )
    recorded: list[RecordedEvent] = []
    start = store.head_position()
    for chunk in range(0, count, 10):
        appends = []
        for i in range(chunk, min(chunk + 10, count)):
            stream, event = makers[(start + i) % 4](start + i)
            appends.append(StreamAppend(stream, ExpectedVersion.ANY, [event]))
        recorded.extend(store.append(*appends))
    return recorded


def relay_position(store: EventStore) -> int:
    with store.engine.connect() as conn:
        return read_checkpoint(conn, RELAY_CHECKPOINT)


def ids_in(messages: list[Any]) -> list[uuid.UUID]:
    return [uuid.UUID(json.loads(_text(m.body))["event_id"]) for m in messages]


def _text(body: Any) -> str:
    return body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else str(body)


RELAY_SCRIPT = """
import json, logging, sys
from events.database import open_store
from services.delivery.relay import Relay
from events.streams import default_registry
from services.delivery import run_until_signalled
logging.basicConfig(level=logging.INFO)
db, url, options, routes, outside, prefix, batch = sys.argv[1:8]
store = open_store(db, default_registry(), migrate=False)
relay = Relay(store, url, json.loads(options), json.loads(routes), json.loads(outside), prefix,
              batch_size=int(batch), poll_interval=0.05)
run_until_signalled(relay.run)
store.close()
"""


def start_relay_process(db_url: str, broker: Broker, routes: dict[str, list[str]],
                        outside: dict[str, list[str] | None], batch: int,
                        log_path: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", RELAY_SCRIPT, db_url, broker.url, json.dumps(broker.options),
            json.dumps(routes), json.dumps(outside), broker.prefix, str(batch)]
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(args, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(REPO)})


# ------------------------------------------------------------------------------ the relay, SIGKILLed
@pytest.mark.postgres
def test_relay_delivers_every_event_to_its_routed_queues_across_a_sigkill(
        pg_url: str, make_store: Callable[..., EventStore], broker: Broker, tmp_path: Path) -> None:
    store = make_store(pg_url, default_registry())
    consumer: KombuConsumer | None = None
    relay_proc: subprocess.Popen[bytes] | None = None
    try:
        group_a, group_b = "grpa", "grpb"
        routes = {group_a: ["EventCreated"], group_b: ["EventUpdated", "EventDeleted"]}
        outside: dict[str, list[str] | None] = {"all": None, "deletes": ["EventDeleted"]}
        names = broker.names
        broker.queues.update({names.group(group_a), names.dead(group_a), names.group(group_b),
                              names.outside("all"), names.outside("deletes")})
        first, second, batch = (30, 18, 4) if broker.kind == "sqs" else (240, 120, 10)

        recorder = Recorder(group_a, routes[group_a])
        consumer = KombuConsumer(recorder, store, broker.url, broker.options, broker.prefix, max_retries=3)
        consumer.start()
        assert consumer.ready.wait(30), "the consumer never subscribed"

        events = append_mixed(store, first)
        log_path = tmp_path / "relay.log"
        relay_proc = start_relay_process(pg_url, broker, routes, outside, batch, log_path)
        assert wait_until(lambda: relay_position(store) > 0, 60), log_path.read_text()
        relay_proc.send_signal(signal.SIGKILL)  # mid-stream: the next batch is being published
        relay_proc.wait(10)
        killed_at = relay_position(store)
        assert 0 < killed_at < store.head_position(), "the relay was not killed mid-stream"

        events += append_mixed(store, second)  # appended while no relay runs
        relay_proc = start_relay_process(pg_url, broker, routes, outside, batch, log_path)
        head = store.head_position()
        assert wait_until(lambda: relay_position(store) == head, 90), log_path.read_text()

        # Rewind the checkpoint: the tail is published again, as after a crash between publish and checkpoint.
        rewound = [e for e in events if e.global_position > head - 12]
        with store.transaction() as conn:
            set_checkpoint(conn, RELAY_CHECKPOINT, head - 12)
        assert wait_until(lambda: relay_position(store) == head, 60), log_path.read_text()
        relay_proc.terminate()  # SIGTERM: a clean stop
        assert relay_proc.wait(15) == 0, log_path.read_text()

        def expected(types: Sequence[str] | None) -> set[uuid.UUID]:
            return {e.event_id for e in events if types is None or e.type in types}

        want_a = expected(routes[group_a])
        repeats_a = len([e for e in rewound if e.type in routes[group_a]])
        assert repeats_a > 0
        seen = lambda: consumer.counts["handled"] + consumer.counts["skipped"]
        assert wait_until(lambda: set(recorder.handled) == want_a and seen() >= len(want_a) + repeats_a,
                          60), (
            f"handled {len(set(recorder.handled))} of {len(want_a)}, counts {consumer.counts}")
        # Each event applied once, whatever the broker delivered twice; the records say the same.
        assert [i for i, n in Counter(recorder.calls).items() if n > 1] == []
        assert set(handled_event_ids(store, group_a)) == want_a

        for name, types in ((names.group(group_b), routes[group_b]), (names.outside("all"), None),
                            (names.outside("deletes"), ["EventDeleted"])):
            want = expected(types)
            got = broker.drain(name, lambda ms, want=want: set(ids_in(ms)) >= want, timeout=60)
            got_ids = ids_in(got)
            assert set(got_ids) == want, (
                f"{name}: {len(want - set(got_ids))} missing, {len(set(got_ids) - want)} foreign")
            if broker.kind == "amqp":  # one AMQP queue keeps publish order: first copies are in log order
                positions = {e.event_id: e.global_position for e in events}
                firsts = [positions[i] for i in dict.fromkeys(got_ids)]
                assert firsts == sorted(firsts), f"{name}: out of log order"
            if broker.kind == "sqs":
                # On SQS the message body is the envelope itself, readable without kombu.
                raw = got[0].delivery_info["sqs_message"]["Body"]
                assert json.loads(raw)["event_id"] == str(ids_in(got)[0])
            envelope = json.loads(_text(got[0].body))
            assert set(envelope) == {"event_id", "stream_id", "stream_version", "global_position", "type",
                                     "schema_version", "data", "metadata", "recorded_at"}
    finally:
        if relay_proc is not None and relay_proc.poll() is None:
            relay_proc.kill()
        if consumer is not None:
            consumer.stop(timeout=15)


# ----------------------------------------------------------------------------------- poison messages
def test_poison_message_is_dead_lettered_after_max_retries_and_the_rest_are_handled(
        sqlite_url: str, make_store: Callable[..., EventStore], broker: Broker) -> None:
    store = make_store(sqlite_url, default_registry())
    consumer: KombuConsumer | None = None
    try:
        events = store.append(*(StreamAppend(f"event-p{i}", ExpectedVersion.NO_STREAM,
                                             [EventCreated({"name": f"p{i}"})]) for i in range(8)))
        poison = events[3].event_id
        recorder = Recorder("worker", ["EventCreated"], poison={poison})
        names = broker.names
        broker.queues.update({names.group("worker"), names.dead("worker")})
        relay = Relay(store, broker.url, broker.options, {"worker": ["EventCreated"]}, {}, broker.prefix)
        while relay.run_once():
            pass
        relay.close()
        broker.publish_raw(names.group("worker"), "this is not an envelope")

        # A retried copy waits 1 s, then 2 s on SQS (DelaySeconds); AMQP retries at once.
        consumer = KombuConsumer(recorder, store, broker.url, broker.options, broker.prefix, max_retries=3,
                                 retry_delay=1)
        consumer.start()
        others = {e.event_id for e in events} - {poison}
        assert wait_until(lambda: set(recorder.handled) == others and consumer.counts["dead"] == 2, 60), (
            consumer.counts)

        assert recorder.calls.count(poison) == 3  # max_retries deliveries, then the dead-letter queue
        if broker.kind == "sqs":
            tries = [t for i, t in zip(recorder.calls, recorder.call_times) if i == poison]
            assert tries[2] - tries[0] >= 2.5, "retried copies were not delayed"
        assert Counter(recorder.handled) == Counter(others)
        dead = broker.drain(names.dead("worker"), lambda ms: len(ms) >= 2)
        by_body = {_text(m.body): m for m in dead}
        assert len(dead) == 2
        garbage = by_body.pop("this is not an envelope")
        assert garbage.headers[ATTEMPTS_HEADER] == 1  # unprocessable: no retry can help
        (poisoned,) = by_body.values()
        assert json.loads(_text(poisoned.body))["event_id"] == str(poison)
        assert poisoned.headers[ATTEMPTS_HEADER] == 3
        assert "RuntimeError: poison" in poisoned.headers["x-dart-error"]
        assert set(handled_event_ids(store, "worker")) == others
    finally:
        if consumer is not None:
            consumer.stop(timeout=15)


def test_an_envelope_too_large_for_a_queue_goes_without_its_payload_and_is_read_back(
        sqlite_url: str, make_store: Callable[..., EventStore], broker: Broker) -> None:
    store = make_store(sqlite_url, default_registry())
    consumer: KombuConsumer | None = None
    try:
        big = {"name": "big", "description": "x" * 300_000}
        (event,) = store.append(StreamAppend("event-big", ExpectedVersion.NO_STREAM, [EventCreated(big)]))
        recorder = Recorder("big", ["EventCreated"])
        names = broker.names
        broker.queues.update({names.group("big"), names.dead("big"), names.outside("all")})
        relay = Relay(store, broker.url, broker.options, {"big": ["EventCreated"]}, {"all": None},
                      broker.prefix)
        while relay.run_once():
            pass
        relay.close()
        (outside,) = broker.drain(broker.names.outside("all"), lambda ms: len(ms) >= 1)
        envelope = json.loads(_text(outside.body))
        assert envelope["data"] is None and envelope["data_omitted"] is True
        assert envelope["event_id"] == str(event.event_id)

        consumer = KombuConsumer(recorder, store, broker.url, broker.options, broker.prefix)
        consumer.start()
        assert wait_until(lambda: recorder.handled == [event.event_id], 30), consumer.counts
        assert recorder.events[0].data == {"data": big}  # read back from the store by id
    finally:
        if consumer is not None:
            consumer.stop(timeout=15)


# ---------------------------------------------------------------------------------- broker outage
class Proxy:
    """A TCP forwarder to the broker that can be cut (connections reset, new ones refused) and restored."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.resume()

    def resume(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (a close alone does not)
            except OSError:
                pass
            listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        raise OSError("closed")
                    (b if sock is a else a).sendall(data)
        except (OSError, ValueError):
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass


def test_relay_and_consumer_ride_out_a_broker_outage(
        sqlite_url: str, make_store: Callable[..., EventStore], broker: Broker,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    host_port = broker.url.split("@", 1)[1].split("/", 1)[0]
    proxy = Proxy(("127.0.0.1", int(host_port.rsplit(":", 1)[1])))
    url = broker.url.replace(host_port, f"127.0.0.1:{proxy.port}")
    options = dict(broker.options)
    if broker.kind == "sqs":
        options["client-config"] = {"retries": {"total_max_attempts": 1}, "connect_timeout": 2,
                                    "read_timeout": 5}
    store = make_store(sqlite_url, default_registry())
    recorder = Recorder("outage", ["EventCreated"])
    broker.queues.update({broker.names.group("outage"), broker.names.dead("outage")})
    relay = Relay(store, url, options, {"outage": ["EventCreated"]}, {}, broker.prefix,
                  poll_interval=0.05, min_backoff=0.05, max_backoff=0.5)
    consumer = KombuConsumer(recorder, store, url, options, broker.prefix, heartbeat=2, max_backoff=0.5)
    relay_thread, stop_relay = relay.start()
    consumer_thread = consumer.start()
    try:
        before = store.append(*(StreamAppend(f"event-o{i}", ExpectedVersion.NO_STREAM,
                                             [EventCreated({"name": f"o{i}"})]) for i in range(5)))
        assert wait_until(lambda: len(set(recorder.handled)) == 5, 30), consumer.counts

        proxy.cut()
        during = store.append(*(StreamAppend(f"event-o{i}", ExpectedVersion.NO_STREAM,
                                             [EventCreated({"name": f"o{i}"})]) for i in range(5, 10)))
        assert wait_until(lambda: any("relay failed" in r.getMessage() for r in caplog.records), 30)
        assert relay_position(store) < during[-1].global_position  # nothing counted as sent while cut
        assert relay_thread.is_alive() and consumer_thread.is_alive()

        proxy.resume()
        want = {e.event_id for e in before + during}
        assert wait_until(lambda: set(recorder.handled) == want, 90), consumer.counts
        assert wait_until(lambda: relay_position(store) == store.head_position(), 30)
        assert [i for i, n in Counter(recorder.calls).items() if n > 1] == []
    finally:
        stop_relay.set()
        relay_thread.join(10)
        consumer.stop(timeout=15)
        proxy.cut()


# ------------------------------------------------------------------------------------------- inbox
EVENT_MESSAGE = {"call": "PROCESS_TRIGGER", "trigger_type_name": "event", "message": {"event_id": "EVT1"}}


def sns_envelope(inner: str, message_id: str | None = None) -> str:
    return json.dumps({"Type": "Notification", "MessageId": message_id or str(uuid.uuid4()),
                       "TopicArn": "arn:aws:sns:us-east-1:123456789012:dart-events", "Message": inner,
                       "Timestamp": "2026-11-26T00:00:00.000Z"})


def test_parse_inbox_message_accepts_raw_json() -> None:
    assert parse_inbox_message(json.dumps(EVENT_MESSAGE)) == EVENT_MESSAGE
    assert parse_inbox_message(json.dumps(EVENT_MESSAGE).encode()) == EVENT_MESSAGE
    assert parse_inbox_message(copy.deepcopy(EVENT_MESSAGE)) == EVENT_MESSAGE


def test_parse_inbox_message_accepts_base64_json() -> None:
    encoded = base64.b64encode(json.dumps(EVENT_MESSAGE).encode()).decode()
    assert parse_inbox_message(encoded) == EVENT_MESSAGE
    assert parse_inbox_message(encoded.encode() + b"\n") == EVENT_MESSAGE


def test_parse_inbox_message_unwraps_an_sns_envelope() -> None:
    assert parse_inbox_message(sns_envelope(json.dumps(EVENT_MESSAGE))) == EVENT_MESSAGE
    encoded = base64.b64encode(json.dumps(EVENT_MESSAGE).encode()).decode()
    assert parse_inbox_message(json.loads(sns_envelope(encoded))) == EVENT_MESSAGE


@pytest.mark.parametrize("garbage, reason", [
    ("", "empty body"),
    ("not json at all", "neither JSON nor base64"),
    ("[1, 2, 3]", "expected a JSON object"),
    (json.dumps({"message": {"event_id": "x"}}), "no 'call'"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (base64.b64encode(b"\xff\xfe").decode(), "neither JSON nor base64"),
    (sns_envelope("still not json"), "neither JSON nor base64"),
    (json.dumps({"Type": "Notification", "Message": 42}), "expected a JSON object"),
])
def test_parse_inbox_message_rejects_garbage_with_a_clear_error(garbage: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_inbox_message(garbage)


def test_inbox_fires_event_triggers_from_all_three_formats(
        sqlite_url: str, make_world: Callable[..., World], broker: Broker) -> None:
    world = make_world(sqlite_url)
    datastore = world.datastore("ds_inbox")
    flow = world.workflow(datastore, [{"name": "a0", "action_type_name": SUCCEEDS}], "wf_inbox", concurrency=10)
    active = world.event("ev_active", "ACTIVE")
    inactive = world.event("ev_inactive", "INACTIVE")
    triggers = {event: world.trigger("event", {"event_id": event}, [flow], name=f"on_{event}")
                for event in (active, inactive)}

    def instances() -> list[dict[str, Any]]:
        return world.service.reader.find_by("workflow_instance", workflow_id=flow)

    def fires(trigger_id: str) -> int:
        return sum(e.type == "TriggerFired" for e in world.store.read_stream(f"trigger-{trigger_id}"))

    inbox = broker.names.inbox()
    broker.queues.update({inbox, broker.names.inbox_dead()})
    consumer = InboxConsumer(world.orch, broker.url, broker.options, broker.prefix, max_retries=2)
    consumer.start()
    try:
        assert consumer.ready.wait(30)

        def body(event_id: str) -> str:
            return json.dumps({**EVENT_MESSAGE, "message": {"event_id": event_id}})

        sns_id = str(uuid.uuid4())
        sent = [
            body(active),                                           # raw JSON
            base64.b64encode(body(active).encode()).decode(),       # base64 JSON (boto JSONMessage)
            sns_envelope(body(active), sns_id),                     # SNS envelope
            sns_envelope(body(active), sns_id),                     # SNS redelivered: same MessageId
            body(inactive),                                         # INACTIVE event: nothing happens
            json.dumps({"call": "TRY_NEXT_ACTION", "datastore_id": datastore}),  # not an inbox call
            "definitely not a message",                                   # garbage
        ]
        for text in sent:
            broker.publish_raw(inbox, text, message_id=str(uuid.uuid4()))

        assert wait_until(lambda: consumer.counts["handled"] + consumer.counts["skipped"] == 5
                          and consumer.counts["dead"] == 2, 60), consumer.counts
        assert consumer.counts == {"handled": 4, "skipped": 1, "retried": 0, "dead": 2}
        assert fires(triggers[active]) == 3
        assert fires(triggers[inactive]) == 0
        assert len(instances()) == 3
        assert len(handled_event_ids(world.store, INBOX_CONSUMER)) == 4

        dead = broker.drain(broker.names.inbox_dead(), lambda ms: len(ms) >= 2)
        errors = sorted(m.headers["x-dart-error"] for m in dead)
        assert "unsupported call 'TRY_NEXT_ACTION'" in errors[0] + errors[1]
        assert "neither JSON nor base64" in errors[0] + errors[1]
    finally:
        consumer.stop(timeout=15)
