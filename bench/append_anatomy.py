"""Where a dart single-event append's time goes: the same append made several ways, from the full store API
down to a bare INSERT, in one throwaway database, with the CPU each costs on both sides of the connection.

    .venv/bin/python -m bench.append_anatomy [--database-url URL] [--rounds N] [--seconds S] [--writers N]
                                             [--variants NAME,NAME,...]

Variants (each writer appends one event at a time to its own 50 streams at the exact expected version):

- ``dart``         ``store.append(StreamAppend(...))``: registry check, serialisation, SQLAlchemy pool
                   checkout, the store's statement, RecordedEvent building.
- ``dart-sql``     the store's multi-event statement and parameters (``events.postgres._INSERT`` /
                   ``_params``, binary placeholders since they were measured here), for one event on a plain
                   psycopg connection. Uses private names of events.postgres; skipped if they have changed.
- ``dart-sql text`` the same with every placeholder in text format (``%(name)s``), as before.
- ``dart-sql gen``  ``dart-sql`` with ``plan_cache_mode = force_generic_plan`` on the connection.
- ``dart-exact-sql`` the store's one-event statement at an exact version (``_INSERT_ONE_EXACT``, where it
                   exists: what ``dart`` runs here) with the store's parameters, on a plain connection, by
                   ``conn.execute`` (a new cursor per statement).
- ``dart-exact-sql cur`` the same on one reused cursor, as the store's append pool runs it.
- ``dart-exact-sql pool`` the same, with the connection borrowed from the store's own append pool and handed
                   back around every append, as ``store.append`` does: its difference from ``cur`` is the pool's
                   cost (psycopg_pool and its closed-by-server check, or the older hand-written deque pool).
- ``dart-one-sql``  the store's one-event statement for ExpectedVersion.ANY (``events.postgres._INSERT_ONE``,
                   with ``dart_stream_version()``), on a plain psycopg connection.
- ``dart-one typed`` the same statement with every parameter cast to its type.
- ``lock+values``  a candidate single-stream statement: the same advisory lock inside the statement, scalar
                   parameters (no arrays, no unnest), the version check as one index probe, RETURNING.
- ``lock+function`` the same, the version read and checked by the migration's ``dart_stream_version()``
                   (only if it exists).
- ``bare+ret``     a plain INSERT ... RETURNING (no lock, no check).
- ``bare``         a plain INSERT by ``conn.execute``: the limit store_bench compares against.
- ``bare cur``     the same on one reused cursor.

After the warm-up the database is ANALYZEd (as in store_bench), so no session keeps a plan made on the
empty table. Reported: events/s (median of the rounds), and per event the CPU of this process (``cpu``)
and of the database's backends (``pg``) in microseconds; CPU figures hold up on a busy machine, rates do
not.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from bench.store_bench import (
    BARE_INSERT,
    BENCH_TYPE,
    DEFAULT_SERVER_URL,
    METADATA,
    METADATA_JSON,
    BenchWorkflowUpdated,
    Server,
    Streams,
    make_payloads,
    measure,
    run_timed,
)
from events.database import open_store
from events.registry import EventRegistry
from events.types import NewEvent, StreamAppend

_dumps = json.JSONEncoder(separators=(",", ":")).encode
COLUMNS = "event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at"
LOCK_VALUES = f"""
WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock(%(lock)s) AS locked)
INSERT INTO events ({COLUMNS})
SELECT %(id)s::uuid, %(stream)s::text, %(expected)s::int + 1, %(type)s::text, 1, %(data)s::jsonb,
       %(meta)s::jsonb, clock_timestamp()
FROM l
WHERE %(expected)s::int = COALESCE(
    (SELECT e.stream_version FROM events e WHERE e.stream_id = %(stream)s::text
     ORDER BY e.stream_version DESC LIMIT 1), 0)
RETURNING event_id, stream_version, global_position, recorded_at
"""
# The same, with the version read and checked by the store's dart_stream_version() function (a fresh snapshot
# after the lock), where the migration defines it.
LOCK_FUNCTION = f"""
WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock(%(lock)s) AS locked)
INSERT INTO events ({COLUMNS})
SELECT %(id)s::uuid, %(stream)s::text, dart_stream_version(%(stream)s::text, %(expected)s::int) + 1,
       %(type)s::text, 1, %(data)s::jsonb, %(meta)s::jsonb, clock_timestamp()
FROM l
RETURNING event_id, stream_version, global_position, recorded_at
"""
BARE_RETURNING = BARE_INSERT + " RETURNING event_id, stream_version, global_position, recorded_at"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.append_anatomy", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--writers", type=int, default=1)
    parser.add_argument("--variants", default="", help="comma-separated variant names to run (default: all)")
    args = parser.parse_args(argv)

    server = Server(args.database_url)
    server.prefix += "_anatomy"
    rng = random.Random(11)
    payloads = make_payloads(rng)
    registry = EventRegistry()
    registry.register(BenchWorkflowUpdated)
    db = server.create("db")
    store = open_store(server.sqlalchemy_url(db), registry)
    connections: list[psycopg.Connection] = []

    def connect() -> psycopg.Connection:
        conn = psycopg.connect(server.conninfo(db), autocommit=True)
        connections.append(conn)
        return conn

    try:
        from events import postgres as pg

        lock_key = pg.APPEND_LOCK_KEY
        store_sql: tuple[str, Callable[..., dict[str, Any]]] | None = (pg._INSERT, pg._params)
    except (ImportError, AttributeError):
        lock_key, store_sql = 0x64617274, None
    store_one_sql: str | None = getattr(pg, "_INSERT_ONE", None) if store_sql is not None else None
    store_exact_sql: str | None = getattr(pg, "_INSERT_ONE_EXACT", None) if store_sql is not None else None

    def dart_writer() -> Callable[[], int]:
        streams, k = Streams(random.Random(rng.random())), rng.randrange(256)

        def step() -> int:
            nonlocal k
            i, k = streams.next(), (k + 1) % len(payloads)
            store.append(StreamAppend(streams.ids[i], streams.versions[i],
                                      [NewEvent(BenchWorkflowUpdated(**payloads[k]), METADATA)]))
            streams.versions[i] += 1
            return 1

        return step

    def dart_sql_writer(text: bool = False, generic: bool = False) -> Callable[[], int]:
        assert store_sql is not None
        sql, params_of = store_sql
        if text:  # every parameter sent in text format: arrays quoted and escaped into literals
            sql = re.sub(r"%\((\w+)\)b", r"%(\1)s", sql)
        conn, streams, k = connect(), Streams(random.Random(rng.random())), rng.randrange(256)
        if generic:  # plan once per connection, not on every execution
            conn.execute("SET plan_cache_mode = force_generic_plan")

        def step() -> int:
            nonlocal k
            i, k = streams.next(), (k + 1) % len(payloads)
            append = StreamAppend(streams.ids[i], streams.versions[i],
                                  [NewEvent(BenchWorkflowUpdated(**payloads[k]), METADATA)])
            rows = store._pending_rows([append])
            returned = conn.execute(sql, params_of(rows, [append])).fetchall()
            assert len(returned) == 1
            streams.versions[i] += 1
            return 1

        return step

    def dart_one_sql_writer(typed: bool = False) -> Callable[[], int]:
        """The store's one-event statement (events.postgres._INSERT_ONE) with the parameters it passes."""
        assert store_one_sql is not None
        sql = store_one_sql
        if typed:  # every parameter with its type spelled out, as lock+function does
            casts = iter(["uuid", "text", "text", "int", "text", "int", "text", "text", "bigint"])
            sql = re.sub(r"%s(::jsonb)?", lambda m: f"%s::{next(casts)}{m.group(1) or ''}", sql)
        conn, streams, k = connect(), Streams(random.Random(rng.random())), rng.randrange(256)

        def step() -> int:
            nonlocal k
            i, k = streams.next(), (k + 1) % len(payloads)
            returned = conn.execute(sql, (
                uuid.uuid4(), streams.ids[i], streams.ids[i], streams.versions[i], BENCH_TYPE, 1,
                _dumps(payloads[k]), METADATA_JSON, lock_key,
            )).fetchall()
            assert len(returned) == 1
            streams.versions[i] += 1
            return 1

        return step

    def dart_exact_sql_writer(reuse_cursor: bool = False) -> Callable[[], int]:
        """The store's one-event statement at an exact version (events.postgres._INSERT_ONE_EXACT)."""
        assert store_exact_sql is not None
        conn, streams, k = connect(), Streams(random.Random(rng.random())), rng.randrange(256)
        execute = conn.cursor().execute if reuse_cursor else conn.execute

        def step() -> int:
            nonlocal k
            i, k = streams.next(), (k + 1) % len(payloads)
            v = streams.versions[i]
            returned = execute(store_exact_sql, (
                uuid.uuid4(), streams.ids[i], v + 1, BENCH_TYPE, 1, _dumps(payloads[k]), METADATA_JSON,
                lock_key, v, streams.ids[i], v,
            )).fetchall()
            assert len(returned) == 1
            streams.versions[i] += 1
            return 1

        return step

    def dart_exact_sql_pooled_writer() -> Callable[[], int]:
        """``dart-exact-sql cur`` on a connection borrowed from the store's append pool for every append."""
        assert store_exact_sql is not None
        streams, k = Streams(random.Random(rng.random())), rng.randrange(256)
        borrow, give_back = _append_pool_of(store)

        def step() -> int:
            nonlocal k
            i, k = streams.next(), (k + 1) % len(payloads)
            v = streams.versions[i]
            borrowed, cursor = borrow()
            try:
                returned = cursor.execute(store_exact_sql, (
                    uuid.uuid4(), streams.ids[i], v + 1, BENCH_TYPE, 1, _dumps(payloads[k]), METADATA_JSON,
                    lock_key, v, streams.ids[i], v,
                )).fetchall()
            finally:
                give_back(borrowed)
            assert len(returned) == 1
            streams.versions[i] += 1
            return 1

        return step

    def lock_values_writer(sql: str = LOCK_VALUES) -> Callable[[], int]:
        conn, streams, k = connect(), Streams(random.Random(rng.random())), rng.randrange(256)

        def step() -> int:
            nonlocal k
            i, k = streams.next(), (k + 1) % len(payloads)
            returned = conn.execute(sql, {
                "lock": lock_key, "id": uuid.uuid4(), "stream": streams.ids[i],
                "expected": streams.versions[i], "type": BENCH_TYPE, "data": _dumps(payloads[k]),
                "meta": METADATA_JSON,
            }).fetchall()
            assert len(returned) == 1
            streams.versions[i] += 1
            return 1

        return step

    def bare_writer(returning: bool, reuse_cursor: bool = False) -> Callable[[], int]:
        conn, streams, k = connect(), Streams(random.Random(rng.random())), rng.randrange(256)
        sql = BARE_RETURNING if returning else BARE_INSERT
        execute = conn.cursor().execute if reuse_cursor else conn.execute

        def step() -> int:
            nonlocal k
            i, k = streams.next(), (k + 1) % len(payloads)
            cur = execute(sql, (uuid.uuid4(), streams.ids[i], streams.versions[i] + 1, BENCH_TYPE,
                                     _dumps(payloads[k]), METADATA_JSON))
            if returning:
                cur.fetchall()
            streams.versions[i] += 1
            return 1

        return step

    makers: dict[str, Callable[[], Callable[[], int]]] = {"dart": dart_writer}
    if store_sql is not None:
        makers["dart-sql"] = dart_sql_writer
        makers["dart-sql text"] = lambda: dart_sql_writer(text=True)
        makers["dart-sql gen"] = lambda: dart_sql_writer(generic=True)
    if store_exact_sql is not None and store_exact_sql.count("%s") == 11:
        makers["dart-exact-sql"] = dart_exact_sql_writer
        makers["dart-exact-sql cur"] = lambda: dart_exact_sql_writer(reuse_cursor=True)
        if _append_pool_of(store) is not None:
            makers["dart-exact-sql pool"] = dart_exact_sql_pooled_writer
    if store_one_sql is not None and store_one_sql.count("%s") == 9:
        makers["dart-one-sql"] = dart_one_sql_writer
        makers["dart-one typed"] = lambda: dart_one_sql_writer(typed=True)
    makers["lock+values"] = lock_values_writer
    with psycopg.connect(server.conninfo(db)) as conn:
        [(has_function,)] = conn.execute("SELECT to_regproc('dart_stream_version') IS NOT NULL").fetchall()
    if has_function:
        makers["lock+function"] = lambda: lock_values_writer(LOCK_FUNCTION)
    makers["bare+ret"] = lambda: bare_writer(True)
    makers["bare"] = lambda: bare_writer(False)
    makers["bare cur"] = lambda: bare_writer(False, reuse_cursor=True)
    if args.variants:
        wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in wanted if v not in makers]
        if unknown:
            parser.error(f"unknown variants {unknown}; known: {', '.join(makers)}")
        makers = {name: makers[name] for name in wanted}

    class _T:  # what store_bench.measure needs of a target
        database = db

    results: dict[str, list[Any]] = {name: [] for name in makers}
    try:
        steps = {name: [make() for _ in range(args.writers)] for name, make in makers.items()}
        for name in makers:
            run_timed(steps[name], 0.5)
        server.analyze(db)
        names = list(makers)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                sample = measure(server, _T(), steps[name], args.seconds)  # type: ignore[arg-type]
                results[name].append(sample)
    finally:
        for conn in connections:
            conn.close()
        store.close()
        server.drop_all()

    print(f"single-event appends, {args.writers} writer(s), {args.rounds} rounds x {args.seconds:g}s")
    print(f"{'variant':<20}{'events/s':>10}{'cpu us':>9}{'pg us':>8}   rounds")
    for name, samples in results.items():
        pgs = [s.server_us for s in samples if s.server_us is not None]
        print(
            f"{name:<20}{statistics.median(s.rate for s in samples):>10,.0f}"
            f"{statistics.median(s.client_us for s in samples):>9,.0f}"
            f"{statistics.median(pgs) if pgs else float('nan'):>8,.0f}   "
            + " ".join(f"{s.rate:,.0f}" for s in samples)
        )
    return 0


def _append_pool_of(store: Any) -> Any:
    """(borrow, give back) on the store's append pool, where borrow returns (what to give back, cursor):
    psycopg_pool's with the store's check (``_borrow``) or the older deque pool (``_fast``); None if neither
    exists. Private names of events.postgres, measured as the store uses them."""
    if hasattr(store, "_borrow") and hasattr(store, "_append_pool"):
        def borrow() -> tuple[Any, Any]:
            conn = store._borrow()
            return conn, conn.append_cursor

        return borrow, store._append_pool.putconn
    if hasattr(store, "_fast"):
        def borrow_cursor() -> tuple[Any, Any]:
            cursor = store._fast.get()
            return cursor, cursor

        return borrow_cursor, store._fast.put
    return None


if __name__ == "__main__":
    sys.exit(main())
