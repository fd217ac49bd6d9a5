"""The read side of the store benchmark: whole-log ``read_all`` against a bare SELECT, and a projections
rebuild over an entity log loaded by COPY (bench/entity_log.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench import entity_log
from bench.pg_server import Server
from bench.store_rounds import Sample
from events.database import open_store
from events.store import EventStore


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
        from events.streams import default_registry
        from projections.rebuild import rebuild_all
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
            counted: dict[str, int] = dict(conn.execute("SELECT type, count FROM stats_event_type_counts").fetchall())
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

