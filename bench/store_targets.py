"""What the store benchmark appends with: the benchmark's event and payloads, and the three targets that
append them, each in its own database: dart's store (exact or ANY expected version), the limit (bare psycopg
INSERTs into the same table) and the peer (the ``eventsourcing`` library's PostgreSQL recorder)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from bench import entity_log
from events.database import create_engine, open_store, upgrade
from events.registry import EventRegistry
from events.store import EventStore
from events.types import Event, ExpectedVersion, Metadata, NewEvent, StreamAppend

STREAMS_PER_WRITER = 50
BENCH_TYPE = "BenchWorkflowUpdated"
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_UNIQUE = random.SystemRandom()


@dataclass(frozen=True)
class BenchWorkflowUpdated(Event):
    """A workflow edit as the API would record it: ten JSON-native fields, ~400 bytes of JSON."""

    type_name = BENCH_TYPE
    category = "workflow"

    name: str
    description: str
    state: str
    engine_name: str
    datastore_id: str
    concurrency: int
    retries_on_failure: int
    timeout_seconds: float
    on_failure_email: list[str]
    tags: list[str]


def make_payloads(rng: random.Random, n: int = 256) -> list[dict[str, Any]]:
    words = ["daily", "load", "ingest", "orders", "customers", "reprocess", "export", "hourly", "nightly",
             "merge", "clean", "sales"]
    return [
        {
            "name": "_".join(rng.sample(words, 3)),
            "description": " ".join(rng.sample(words, 8)),
            "state": rng.choice(["ACTIVE", "INACTIVE"]),
            "engine_name": rng.choice(["emr_engine", "redshift_engine", "s3_engine"]),
            "datastore_id": entity_log.new_id(rng),
            "concurrency": rng.randint(1, 4),
            "retries_on_failure": rng.randint(0, 3),
            "timeout_seconds": rng.choice([600.0, 3600.0, 7200.5]),
            "on_failure_email": [f"{rng.choice(words)}@example.com"],
            "tags": rng.sample(words, rng.randint(0, 3)),
        }
        for _ in range(n)
    ]


METADATA = Metadata(actor="user:BENCH00001", correlation_id="7d1f2c8e-0a4b-4c39-9c55-2f0e6a1b3d47")
METADATA_JSON = _dumps(METADATA.as_dict())


class Streams:
    """One writer's streams and their versions: appends go round-robin over them at the exact version."""

    def __init__(self, rng: random.Random, n: int = STREAMS_PER_WRITER) -> None:
        del rng  # ids come from the OS: two writers never share a stream, whatever seeds they were given
        self.ids = [f"workflow-{entity_log.new_id(_UNIQUE)}" for _ in range(n)]
        self.uuids = [uuid.uuid4() for _ in range(n)]  # eventsourcing's originator ids
        self.versions = [0] * n
        self.i = -1

    def next(self) -> int:
        self.i = (self.i + 1) % len(self.ids)
        return self.i


Step = Callable[[], int]  # does one append, returns how many events it wrote


class Target:
    name = ""
    database = ""  # the database its PostgreSQL backends are connected to (for their CPU time)

    def writer(self, batch: int, rng: random.Random) -> Step:
        raise NotImplementedError

    def close(self) -> None:
        pass


class DartTarget(Target):
    """dart's store, appending at the exact expected version (what an If-Match client and a worker guarding
    its decision with the stream's version do)."""

    name = "dart"
    expected_any = False

    def __init__(self, url: str, payloads: list[dict[str, Any]]) -> None:
        registry = EventRegistry()
        registry.register(BenchWorkflowUpdated)
        self.store: EventStore = open_store(url, registry)
        self.payloads = payloads

    def writer(self, batch: int, rng: random.Random) -> Step:
        streams, payloads, store, any_version = Streams(rng), self.payloads, self.store, self.expected_any
        k = rng.randrange(len(payloads))

        def step() -> int:
            nonlocal k
            i = streams.next()
            events = []
            for _ in range(batch):
                k = (k + 1) % len(payloads)
                events.append(NewEvent(BenchWorkflowUpdated(**payloads[k]), METADATA))
            expected = ExpectedVersion.ANY if any_version else streams.versions[i]
            store.append(StreamAppend(streams.ids[i], expected, events))
            streams.versions[i] += batch
            return batch

        return step

    def close(self) -> None:
        self.store.close()


class DartAnyTarget(DartTarget):
    """The same store appending with ExpectedVersion.ANY (a command that states no version): the server
    computes the version. Shares the dart target's store and database."""

    name = "dart-any"
    expected_any = True

    def __init__(self, dart: DartTarget) -> None:
        self.store, self.payloads, self.database = dart.store, dart.payloads, dart.database

    def close(self) -> None:
        pass  # the dart target closes the store


_BARE_COLUMNS = "event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at"
BARE_INSERT = (
    f"INSERT INTO events ({_BARE_COLUMNS})"
    " VALUES (%s, %s, %s, %s, 1, %s::jsonb, %s::jsonb, clock_timestamp())"
)
# One multi-row INSERT per batch, its arrays sent in binary (%b): the fastest plain way measured, so the
# honest limit for batches. Client CPU per row on the 2-core machine: 12 us, against 21 for executemany in a
# transaction, 24 for a 100-row VALUES list and 52 for the same unnest with text-format arrays (which quote
# and escape every JSON document).
BARE_INSERT_MANY = (
    f"INSERT INTO events ({_BARE_COLUMNS})"
    " SELECT i, s, v, t, 1, d::jsonb, m::jsonb, clock_timestamp()"
    " FROM unnest(%b::uuid[], %b::text[], %b::int[], %b::text[], %b::text[], %b::text[])"
    " AS r(i, s, v, t, d, m)"
)


class BareTarget(Target):
    """The limit: a psycopg connection per writer, autocommit, one plain INSERT per append (no ordering lock,
    no version check, no RETURNING), the same uuid and JSON work dart has to do; a batch is one multi-row
    INSERT of binary arrays."""

    name = "bare"

    def __init__(self, url: str, conninfo: str, payloads: list[dict[str, Any]]) -> None:
        self.conninfo = conninfo
        self.payloads = payloads
        self.connections: list[psycopg.Connection] = []
        # The very table dart appends to: its columns, constraints and indexes come from the migrations.
        engine = create_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()

    def writer(self, batch: int, rng: random.Random) -> Step:
        conn = psycopg.connect(self.conninfo, autocommit=True)
        self.connections.append(conn)
        streams, payloads = Streams(rng), self.payloads
        k = rng.randrange(len(payloads))
        uuid4 = uuid.uuid4

        if batch == 1:

            def step() -> int:
                nonlocal k
                i = streams.next()
                k = (k + 1) % len(payloads)
                version = streams.versions[i] + 1
                conn.execute(
                    BARE_INSERT,
                    (uuid4(), streams.ids[i], version, BENCH_TYPE, _dumps(payloads[k]), METADATA_JSON),
                )
                streams.versions[i] = version
                return 1

            return step

        def step_many() -> int:
            nonlocal k
            i = streams.next()
            base = streams.versions[i]
            datas = []
            for _ in range(batch):
                k = (k + 1) % len(payloads)
                datas.append(_dumps(payloads[k]))
            conn.execute(
                BARE_INSERT_MANY,
                (
                    [uuid4() for _ in range(batch)],
                    [streams.ids[i]] * batch,
                    list(range(base + 1, base + batch + 1)),
                    [BENCH_TYPE] * batch,
                    datas,
                    [METADATA_JSON] * batch,
                ),
            )
            streams.versions[i] = base + batch
            return batch

        return step_many

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


class PeerTarget(Target):
    """The peer: eventsourcing's PostgresApplicationRecorder with its defaults (LOCK TABLE ... IN EXCLUSIVE
    MODE around each insert, so notification ids commit in order, plus NOTIFY), used at the recorder level:
    no aggregate, mapper or transcoder on top, which can only flatter it."""

    name = "eventsourcing"

    def __init__(self, conninfo: str, payloads: list[dict[str, Any]]) -> None:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        # pool_size/max_overflow: the library factory's defaults (5 + 10), enough for 8 writers.
        self.datastore = PostgresDatastore(
            dbname=str(params["dbname"]),
            host=str(params.get("host", "localhost")),
            port=str(params.get("port", 5432)),
            user=str(params.get("user", "postgres")),
            password=str(params.get("password", "")),
            pool_size=5,
            max_overflow=10,
        )
        self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()
        self.stored_event = StoredEvent
        # What eventsourcing's mapper would store: the event's state (payload, metadata, timestamp) as JSON.
        self.states = [
            _dumps({"data": p, "metadata": METADATA.as_dict(), "timestamp": "2025-03-01T12:00:00+00:00"})
            .encode()
            for p in payloads
        ]

    def writer(self, batch: int, rng: random.Random) -> Step:
        streams, states, recorder, stored = Streams(rng), self.states, self.recorder, self.stored_event
        k = rng.randrange(len(states))
        topic = f"bench.events:{BENCH_TYPE}"

        def step() -> int:
            nonlocal k
            i = streams.next()
            base = streams.versions[i]
            events = []
            for n in range(1, batch + 1):
                k = (k + 1) % len(states)
                events.append(stored(streams.uuids[i], base + n, topic, states[k]))
            recorder.insert_events(events)
            streams.versions[i] = base + batch
            return batch

        return step

    def close(self) -> None:
        self.datastore.close()

