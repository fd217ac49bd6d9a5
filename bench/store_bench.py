"""Benchmark of dart's PostgreSQL event store against its limit (bare psycopg INSERTs into the same table)
and its peer (the ``eventsourcing`` library's PostgreSQL recorder), plus read throughput and a projections
rebuild.

    .venv/bin/python -m bench.store_bench [--quick] [--database-url URL] [--events-for-rebuild N]

``URL`` names a server (any database on it the user can connect to, default
postgresql://postgres@127.0.0.1:5432/postgres or $DART_BENCH_DATABASE_URL); the bench creates throwaway
databases ``dart_bench_<pid>_*`` there and drops them at the end (``--keep`` keeps them). It prints a table,
then one line ``BENCH_JSON {...}`` holding every number. docs/benchmarks.md has results and how to read them.

Every append, dart's, bare and peer, is its own transaction committed with synchronous_commit on. Writers are
threads of this process (dart runs in-process, so that is how its writers share a machine); each writer owns
its streams, so nothing here measures conflicts. Runs are timed (so a slower target does fewer appends), the
targets of one measurement are interleaved in rounds, rotating who goes first, and the median round is
reported. After each warm-up the target databases are ANALYZEd, as autovacuum would have done on a live
system (``--no-analyze`` keeps the fresh-database behaviour). CPU per event is reported beside each rate,
for this process and for the target's PostgreSQL backends (read from /proc when the server is local).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa

from bench import entity_log
from events.database import create_engine, open_store, upgrade
from events.registry import EventRegistry
from events.store import EventStore
from events.types import Event, ExpectedVersion, Metadata, NewEvent, StreamAppend

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
WRITERS = 8
BATCH = 100
STREAMS_PER_WRITER = 50
BENCH_TYPE = "BenchWorkflowUpdated"
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_UNIQUE = random.SystemRandom()
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Plan:
    """How long and how often each measurement runs."""

    single_rounds: int
    single_seconds: float
    multi_rounds: int
    multi_seconds: float
    batch_rounds: int
    batch_seconds: float
    warmup_seconds: float
    read_rounds: int
    rebuild_events: int


FULL = Plan(
    single_rounds=5, single_seconds=3.0, multi_rounds=3, multi_seconds=3.0, batch_rounds=3, batch_seconds=2.0,
    warmup_seconds=0.5, read_rounds=2, rebuild_events=1_000_000,
)
QUICK = Plan(
    single_rounds=3, single_seconds=1.0, multi_rounds=2, multi_seconds=1.0, batch_rounds=2, batch_seconds=0.7,
    warmup_seconds=0.2, read_rounds=1, rebuild_events=50_000,
)


# ------------------------------------------------------------------------------------ payload & event
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
    words = "daily load ingest orders customers reprocess export hourly nightly merge clean sales".split()
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


# ----------------------------------------------------------------------------------------- targets
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

    def __init__(self, dart: DartTarget) -> None:  # noqa: D107 - no store of its own
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


# ---------------------------------------------------------------------------------------- running
def run_timed(steps: list[Step], seconds: float) -> tuple[int, float]:
    """Run every step in its own thread (or this one, for a single writer) for ``seconds``.

    Returns (events written, seconds taken): from the start until the last writer finished its last append.
    """
    if len(steps) == 1:
        step, count = steps[0], 0
        started = time.perf_counter()
        deadline = started + seconds
        while True:
            count += step()
            now = time.perf_counter()
            if now >= deadline:
                return count, now - started
    counts = [0] * len(steps)
    ends = [0.0] * len(steps)
    errors: list[BaseException] = []
    gate = threading.Barrier(len(steps) + 1)
    start: list[float] = []

    def work(n: int) -> None:
        step, count = steps[n], 0
        try:
            gate.wait()
            deadline = start[0] + seconds
            while True:
                count += step()
                if time.perf_counter() >= deadline:
                    break
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)
        counts[n] = count
        ends[n] = time.perf_counter()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(len(steps))]
    for t in threads:
        t.start()
    start.append(time.perf_counter())
    gate.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts), max(ends) - start[0]


@dataclass
class Sample:
    rate: float  # events/s
    client_us: float  # CPU of this process per event, microseconds (every thread, GC included)
    server_us: float | None  # CPU of the target's PostgreSQL backends per event (None: server not local)


@dataclass
class Measured:
    key: str
    label: str
    unit: str
    samples: list[float]
    client_us: list[float] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)

    @property
    def value(self) -> float:
        return statistics.median(self.samples)

    def cpu(self) -> tuple[float | None, float | None]:
        return (
            statistics.median(self.client_us) if self.client_us else None,
            statistics.median(self.server_us) if self.server_us else None,
        )


def measure(server: Server, target: Target, steps: list[Step], seconds: float) -> Sample:
    before = server.backend_cpu(target.database)
    cpu0 = time.process_time()
    events, elapsed = run_timed(steps, seconds)
    client = time.process_time() - cpu0
    after = server.backend_cpu(target.database)
    backend = None
    if before is not None and after is not None:
        backend = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    return Sample(
        events / elapsed, client / events * 1e6, None if backend is None else backend / events * 1e6
    )


def interleaved(
    server: Server,
    targets: list[Target],
    writers: int,
    batch: int,
    rounds: int,
    seconds: float,
    warmup: float,
    rng: random.Random,
    analyze: bool = True,
) -> dict[str, list[Sample]]:
    """Each target's events/s per round, the targets taking turns and rotating who goes first.

    After the warm-up every target database is ANALYZEd, as autovacuum would have done on a live system: a
    plan cached by a session while its table was nearly empty is then made again (``analyze=False`` keeps
    the fresh-database behaviour; see docs/benchmarks.md for what it costs dart).
    """
    steps = {t.name: [t.writer(batch, random.Random(rng.random())) for _ in range(writers)] for t in targets}
    for t in targets:
        run_timed(steps[t.name], warmup)  # connections, prepared statements, caches
    if analyze:
        for t in targets:
            server.analyze(t.database)
    samples: dict[str, list[Sample]] = {t.name: [] for t in targets}
    for r in range(rounds):
        order = targets[r % len(targets):] + targets[: r % len(targets)]
        for t in order:
            samples[t.name].append(measure(server, t, steps[t.name], seconds))
    return samples


# ------------------------------------------------------------------------------------------ reads
def measure_reads(server: Server, store: EventStore, database: str, rounds: int) -> dict[str, list[Sample]]:
    """Whole-log reads in pages: dart's read_all (rows decoded into RecordedEvent) and the same SELECT on a
    plain psycopg connection (rows as tuples, jsonb parsed to dicts by psycopg: the limit)."""
    head = store.head_position()
    bare = psycopg.connect(server.conninfo(database))
    sql = (
        "SELECT event_id, stream_id, stream_version, global_position, type, schema_version, data, metadata,"
        " recorded_at FROM events WHERE global_position > %s ORDER BY global_position LIMIT %s"
    )

    def dart_reader(page: int) -> Callable[[], int]:
        def read() -> int:
            position, n = 0, 0
            while rows := store.read_all(position, page):
                n += len(rows)
                position = rows[-1].global_position
            return n

        return read

    def bare_reader(page: int) -> Callable[[], int]:
        def read() -> int:
            position, n = 0, 0
            while rows := bare.execute(sql, (position, page)).fetchall():
                bare.rollback()
                n += len(rows)
                position = rows[-1][3]
            bare.rollback()
            return n

        return read

    readers = {"dart.read_all.page1000": dart_reader(1000), "dart.read_all.page5000": dart_reader(5000),
               "bare.read.page5000": bare_reader(5000)}
    samples: dict[str, list[Sample]] = {key: [] for key in readers}
    try:
        store.read_all(0, 5000)  # warm the pool and the cache
        bare_reader(5000)()
        for _ in range(rounds):
            for key, read in readers.items():
                before = server.backend_cpu(database)
                cpu0, started = time.process_time(), time.perf_counter()
                n = read()
                elapsed, client = time.perf_counter() - started, time.process_time() - cpu0
                after = server.backend_cpu(database)
                assert n == head, (key, n, head)
                backend = None if before is None or after is None else sum(
                    t - before.get(pid, 0.0) for pid, t in after.items()
                )
                samples[key].append(
                    Sample(n / elapsed, client / n * 1e6, None if backend is None else backend / n * 1e6)
                )
    finally:
        bare.close()
    return samples


# ---------------------------------------------------------------------------------------- rebuild
COPY_COLUMNS = "event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at"


def load_entity_log(conninfo: str, n_events: int) -> tuple[entity_log.LogSummary, float]:
    summary = entity_log.LogSummary()
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY events ({COPY_COLUMNS}) FROM STDIN") as copy:
            for row in entity_log.generate(n_events, summary=summary):
                copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE events")  # what autovacuum would have done to a log this old
    return summary, time.perf_counter() - started


def measure_rebuild(url: str, conninfo: str, n_events: int) -> dict[str, Any]:
    try:
        from projections.rebuild import rebuild_all
        from events.streams import default_registry
    except ImportError as e:
        return {"available": False, "reason": f"{type(e).__name__}: {e}"}
    store = open_store(url, default_registry())  # creates the tables (every migration)
    try:
        summary, load_seconds = load_entity_log(conninfo, n_events)
        result = rebuild_all(store, names=None)
        with psycopg.connect(conninfo) as conn:
            rows = {
                c: conn.execute(f"SELECT count(*) FROM rm_{c}").fetchone()[0]  # type: ignore[index]
                for c in entity_log.CATEGORIES
            }
            counted = dict(conn.execute("SELECT type, count FROM stats_event_type_counts").fetchall())
    finally:
        store.close()
    problems = [
        f"rm_{c}: {rows[c]} rows, {summary.live[c]} live entities" for c in rows if rows[c] != summary.live[c]
    ]
    if counted != summary.types:
        problems.append("stats_event_type_counts differs from the log")
    return {
        "available": True,
        "log_events": summary.events,
        "streams": sum(summary.streams.values()),
        "load_seconds": load_seconds,
        "reported_events": int(result.events),
        "seconds": float(result.seconds),
        "events_per_second": summary.events / float(result.seconds),
        "reported_events_per_second": int(result.events) / float(result.seconds),
        "projections": [
            {"name": r.name, "events": r.events, "seconds": round(r.seconds, 3)}
            for r in getattr(result, "results", [])
        ],
        "check": "ok" if not problems else "; ".join(problems),
    }


# ------------------------------------------------------------------------------------ databases
class Server:
    def __init__(self, url: str) -> None:
        self.url = sa.engine.make_url(url)
        self.prefix = f"dart_bench_{os.getpid()}"
        self.created: list[str] = []

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(self.url.database or "postgres"), autocommit=True)

    def conninfo(self, database: str) -> str:
        u = self.url
        return psycopg.conninfo.make_conninfo(
            host=u.host or "localhost", port=u.port or 5432, user=u.username or "postgres",
            password=u.password or "", dbname=database, **{k: str(v) for k, v in u.query.items()},
        )

    def sqlalchemy_url(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def create(self, suffix: str) -> str:
        name = f"{self.prefix}_{suffix}"
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return name

    def analyze(self, database: str) -> None:
        with psycopg.connect(self.conninfo(database), autocommit=True) as conn:
            conn.execute("ANALYZE")

    def backend_cpu(self, database: str) -> dict[int, float] | None:
        """CPU seconds used so far by each backend connected to ``database``, read from /proc: None when the
        server is not on this machine (or /proc is not readable)."""
        with self.admin() as conn:
            pids = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
                (database,),
            )]
        out: dict[int, float] = {}
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                return None
            out[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        return out

    def drop_all(self) -> None:
        with self.admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def describe(self) -> dict[str, Any]:
        with self.admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            settings = dict(
                conn.execute(
                    "SELECT name, current_setting(name) FROM pg_settings WHERE name IN"
                    " ('synchronous_commit', 'fsync', 'wal_sync_method', 'shared_buffers', 'max_connections',"
                    " 'full_page_writes', 'commit_delay')"
                ).fetchall()
            )
        return {"version": version, "settings": settings}

    def other_activity(self) -> int:
        """Other sessions on the server busy in a query right now (noise from whoever else uses it)."""
        with self.admin() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend' AND datname NOT LIKE %s",
                (f"{self.prefix}%",),
            ).fetchone()
        return int(row[0])  # type: ignore[index]


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, cwd=root
        ).stdout.strip()
        # Uncommitted changes to what is measured (the store and the projections), listed with the results.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "events", "projections"], capture_output=True, text=True,
            check=False, cwd=root,
        ).stdout.split("\n")
    except OSError:
        commit, dirty = "", []
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "sqlalchemy": sa.__version__,
        "git_commit": commit,
        "git_dirty": [line[3:] for line in dirty if line.strip()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs and a 50,000-event rebuild (~1 min)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DART_BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
        help="a database on the server to use (throwaway databases are created beside it)",
    )
    parser.add_argument("--events-for-rebuild", type=int, default=None, help="events in the rebuild's log")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument(
        "--no-analyze", action="store_true",
        help="do not ANALYZE the target databases after each warm-up (the fresh-database behaviour)",
    )
    parser.add_argument("--seed", type=int, default=20251125)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    rebuild_events = args.events_for_rebuild if args.events_for_rebuild is not None else plan.rebuild_events

    began = time.perf_counter()
    rng = random.Random(args.seed)
    server = Server(args.database_url)
    info = {"machine": machine(), "postgres": server.describe(), "mode": "quick" if args.quick else "full"}
    payloads = make_payloads(rng)
    measured: list[Measured] = []
    noise: list[dict[str, Any]] = []
    targets: list[Target] = []
    rebuild: dict[str, Any] = {"available": False, "reason": "not run"}
    read_log_events = 0

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f}s] {msg}", file=sys.stderr, flush=True)

    def note_noise(phase: str) -> None:
        noise.append({"after": phase, "loadavg_1m": round(os.getloadavg()[0], 2),
                      "other_active_sessions": server.other_activity()})

    note_noise("start")
    try:
        dart_db, bare_db, peer_db = server.create("dart"), server.create("bare"), server.create("peer")
        dart = DartTarget(server.sqlalchemy_url(dart_db), payloads)
        bare = BareTarget(server.sqlalchemy_url(bare_db), server.conninfo(bare_db), payloads)
        peer = PeerTarget(server.conninfo(peer_db), payloads)
        dart.database, bare.database, peer.database = dart_db, bare_db, peer_db
        targets = [dart, bare, peer]
        dart_any = DartAnyTarget(dart)

        def run(
            label: str, writers: int, batch: int, rounds: int, seconds: float,
            extra: list[Target] | None = None,
        ) -> None:
            these = targets + (extra or [])
            log(f"{label}: {rounds} rounds x {seconds:g}s each for {', '.join(t.name for t in these)}")
            got = interleaved(
                server, these, writers, batch, rounds, seconds, plan.warmup_seconds, rng,
                analyze=not args.no_analyze,
            )
            kind = "single" if batch == 1 else f"batch{batch}"
            for name, samples in got.items():
                measured.append(
                    Measured(
                        f"{name}.{kind}.{writers}w", f"{name} {label}", "events/s", [x.rate for x in samples],
                        [x.client_us for x in samples],
                        [x.server_us for x in samples if x.server_us is not None],
                    )
                )
            note_noise(f"{kind}.{writers}w")

        run("single-event appends, 1 writer", 1, 1, plan.single_rounds, plan.single_seconds, [dart_any])
        run(f"single-event appends, {WRITERS} writers", WRITERS, 1, plan.multi_rounds, plan.multi_seconds)
        run(f"{BATCH}-event appends, 1 writer", 1, BATCH, plan.batch_rounds, plan.batch_seconds)
        run(f"{BATCH}-event appends, {WRITERS} writers", WRITERS, BATCH, plan.batch_rounds,
            plan.batch_seconds)

        read_log_events = dart.store.head_position()
        log(f"read_all over dart's log of {read_log_events:,} events")
        reads = measure_reads(server, dart.store, dart_db, plan.read_rounds)
        for key, label in (
            ("dart.read_all.page1000", "dart read_all, pages of 1000"),
            ("dart.read_all.page5000", "dart read_all, pages of 5000"),
            ("bare.read.page5000", "bare psycopg SELECT, pages of 5000"),
        ):
            got = reads[key]
            measured.append(
                Measured(key, label, "events/s", [x.rate for x in got], [x.client_us for x in got],
                         [x.server_us for x in got if x.server_us is not None])
            )
        note_noise("reads")
        for t in targets:
            t.close()
        targets = []

        log(f"rebuild: projections.rebuild.rebuild_all over {rebuild_events:,} entity events (if it imports)")
        rebuild_db = server.create("rebuild")
        rebuild = measure_rebuild(
            server.sqlalchemy_url(rebuild_db), server.conninfo(rebuild_db), rebuild_events
        )
        note_noise("rebuild")
        log("done")
    finally:
        for t in targets:
            t.close()
        if not args.keep:
            server.drop_all()

    values = {m.key: m.value for m in measured}
    w, b = WRITERS, BATCH
    ratios = [
        ("dart 1-writer single / bare 1-writer single",
         values["dart.single.1w"] / values["bare.single.1w"], 0.85),
        (f"dart {w}-writer single / eventsourcing {w}-writer single",
         values[f"dart.single.{w}w"] / values[f"eventsourcing.single.{w}w"], 1.8),
    ]
    if rebuild.get("available"):
        ratios.append((f"rebuild log events/s / bare 1-writer {b}-row batch rows/s",
                       rebuild["events_per_second"] / values[f"bare.batch{b}.1w"], 0.60))
    context = [  # no target: where the rest stands
        ("dart-any (ANY version) 1-writer single / bare 1-writer single",
         values["dart-any.single.1w"] / values["bare.single.1w"]),
        (f"dart {w}-writer single / bare {w}-writer single",
         values[f"dart.single.{w}w"] / values[f"bare.single.{w}w"]),
        ("dart 1-writer single / eventsourcing 1-writer single",
         values["dart.single.1w"] / values["eventsourcing.single.1w"]),
        (f"dart 1-writer {b}-batch / bare 1-writer {b}-batch",
         values[f"dart.batch{b}.1w"] / values[f"bare.batch{b}.1w"]),
        (f"dart 1-writer {b}-batch / eventsourcing 1-writer {b}-batch",
         values[f"dart.batch{b}.1w"] / values[f"eventsourcing.batch{b}.1w"]),
        (f"dart {w}-writer {b}-batch / eventsourcing {w}-writer {b}-batch",
         values[f"dart.batch{b}.{w}w"] / values[f"eventsourcing.batch{b}.{w}w"]),
        ("dart read_all (5000) / bare SELECT (5000)",
         values["dart.read_all.page5000"] / values["bare.read.page5000"]),
    ]

    m0 = info["machine"]
    print()
    print(f"dart event store benchmark ({info['mode']}): {m0['nproc']} cores, {m0['memory_gib']} GiB, "
          f"PostgreSQL {info['postgres']['version']}, commit {m0['git_commit']}"
          f"{' (dirty)' if m0['git_dirty'] else ''}, {m0['date']}")
    print()
    width = max(len(m.label) for m in measured) + 2
    print(f"{'measurement'.ljust(width)}{'median':>10}  {'cpu us/ev':>9} {'pg us/ev':>8}  rounds (events/s)")
    print("-" * (width + 70))
    for m in measured:
        client, backend = m.cpu()
        print(
            f"{m.label.ljust(width)}{m.value:>10,.0f}  {_num(client):>9} {_num(backend):>8}  "
            + " ".join(f"{x:,.0f}" for x in m.samples)
        )
    print("(events/s; cpu us/ev: this process's CPU per event, all threads; "
          "pg us/ev: the target's PostgreSQL backends' CPU per event)")
    print()
    if rebuild.get("available"):
        print(f"rebuild: {rebuild['log_events']:,} log events ({rebuild['streams']:,} streams) in "
              f"{rebuild['seconds']:.1f}s = {rebuild['events_per_second']:,.0f} log events/s "
              f"(rebuild_all counted {rebuild['reported_events']:,} events read = "
              f"{rebuild['reported_events_per_second']:,.0f}/s); "
              f"loaded by COPY in {rebuild['load_seconds']:.1f}s; "
              f"read models check: {rebuild['check']}")
        for p in rebuild["projections"]:
            print(f"    {p['name']:<32}{p['events']:>10,} events {p['seconds']:>8.2f}s")
    else:
        print(f"rebuild: not available ({rebuild.get('reason')})")
    print()
    print(f"{'ratio'.ljust(66)}{'value':>7}  {'target':>8}  verdict")
    for label, value, target in ratios:
        verdict = "met" if value >= target else "MISSED"
        print(f"{label.ljust(66)}{value:>7.2f}  {'>= ' + format(target, '.2f'):>8}  {verdict}")
    for label, value in context:
        print(f"{label.ljust(66)}{value:>7.2f}")
    print()
    print("noise (1-min load average / other sessions active on the server): "
          + ", ".join(f"{n['after']} {n['loadavg_1m']}/{n['other_active_sessions']}" for n in noise)
          + f"; wall time {time.perf_counter() - began:.0f}s")

    report = {
        **info,
        "plan": plan.__dict__ | {"rebuild_events": rebuild_events, "writers": WRITERS, "batch": BATCH,
                                 "streams_per_writer": STREAMS_PER_WRITER, "analyze": not args.no_analyze},
        "results": {
            m.key: {
                "median": round(m.value, 1), "unit": m.unit, "samples": [round(x, 1) for x in m.samples],
                "client_cpu_us_per_event": _round(m.cpu()[0]), "server_cpu_us_per_event": _round(m.cpu()[1]),
            }
            for m in measured
        },
        "read_log_events": read_log_events,
        "rebuild": rebuild,
        "ratios": {label: {"value": round(v, 3), "target": t, "met": v >= t} for label, v, t in ratios},
        "context_ratios": {label: round(v, 3) for label, v in context},
        "noise": noise,
        "wall_seconds": round(time.perf_counter() - began, 1),
    }
    print("BENCH_JSON " + json.dumps(report, separators=(",", ":"), default=str))
    return 0


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


if __name__ == "__main__":
    sys.exit(main())
