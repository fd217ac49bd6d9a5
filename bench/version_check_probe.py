"""Does a dart append that reads the stream's version get slower as its stream grows? The store's one-event
statement for ExpectedVersion.ANY (``_INSERT_ONE``, which calls the migration's ``dart_stream_version()``, as
multi-event appends do), against the same statement with that function's query written as
``ORDER BY stream_version DESC LIMIT 1``, in one throwaway database, rounds interleaved while streams grow.

    .venv/bin/python -m bench.version_check_probe [--database-url URL] [--rounds N] [--seconds S] [--quick]

Why it matters: PL/pgSQL caches the plan of ``SELECT COALESCE(max(stream_version), 0) FROM events
WHERE stream_id = p_stream`` the first times a session runs it. On a small table the cached plan is an
Aggregate over an index scan of the stream's whole key range (every entry of the stream, a heap fetch each),
not the one-entry backward scan, and the session keeps it: each append then costs more the longer its stream
is, and pays that inside the global append lock, until an ANALYZE of ``events`` invalidates the plan. The
``LIMIT 1`` form is planned as the one-entry backward scan whatever the table's size. The probe starts on an
empty table and never ANALYZEs; it prints the PostgreSQL backend CPU per append, round by round.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid

import psycopg

from bench.pg_server import DEFAULT_SERVER_URL, Server
from bench.store_rounds import run_timed
from bench.store_targets import BENCH_TYPE, METADATA_JSON, BenchWorkflowUpdated, Streams, make_payloads
from events.database import open_store
from events.registry import EventRegistry

_dumps = json.JSONEncoder(separators=(",", ":")).encode
LIMIT_ONE_FUNCTION = """
CREATE FUNCTION bench_stream_version_limit_one(p_stream text, p_expected integer) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    current integer;
BEGIN
    SELECT stream_version INTO current FROM events WHERE stream_id = p_stream
    ORDER BY stream_version DESC LIMIT 1;
    current := COALESCE(current, 0);
    IF p_expected IS NOT NULL AND current <> p_expected THEN
        RAISE EXCEPTION USING ERRCODE = 'DV001',
            MESSAGE = format('version conflict on %s: expected %s, actual %s', p_stream, p_expected, current),
            DETAIL = current::text;
    END IF;
    RETURN current;
END
$$
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.version_check_probe", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 0.3 s: that it runs (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 2, 0.3
    try:
        from events.postgres import _INSERT_ONE, APPEND_LOCK_KEY
    except ImportError as e:
        print(f"the store has no one-event statement to probe ({e})")
        return 1
    if "dart_stream_version(" not in _INSERT_ONE or _INSERT_ONE.count("%s") != 9:
        print("events.postgres._INSERT_ONE has changed shape: this probe needs updating")
        return 1

    server = Server(args.database_url)
    server.prefix += "_version"
    payloads = make_payloads(random.Random(5))
    registry = EventRegistry()
    registry.register(BenchWorkflowUpdated)
    db = server.create("db")
    connections: list[psycopg.Connection] = []
    try:
        open_store(server.sqlalchemy_url(db), registry).close()  # the migrations: table and function
        with psycopg.connect(server.conninfo(db), autocommit=True) as conn:
            conn.execute(LIMIT_ONE_FUNCTION)

        def writer(sql: str) -> tuple:  # type: ignore[type-arg]
            conn = psycopg.connect(server.conninfo(db), autocommit=True)
            connections.append(conn)
            streams, k = Streams(random.Random()), 0

            def step() -> int:
                nonlocal k
                i, k = streams.next(), (k + 1) % len(payloads)
                conn.execute(sql, (
                    uuid.uuid4(), streams.ids[i], streams.ids[i], streams.versions[i], BENCH_TYPE, 1,
                    _dumps(payloads[k]), METADATA_JSON, APPEND_LOCK_KEY,
                )).fetchall()
                streams.versions[i] += 1
                return 1

            return step, conn, streams

        variants = {
            "dart_stream_version()": writer(_INSERT_ONE),
            "ORDER BY .. LIMIT 1": writer(
                _INSERT_ONE.replace("dart_stream_version(", "bench_stream_version_limit_one(")
            ),
        }

        def backend_seconds(conn: psycopg.Connection) -> float:
            cpu = server.backend_cpu(db) or {}
            return cpu.get(conn.info.backend_pid, 0.0)

        print(f"{'round':>5}  {'variant':<24}{'events/s':>9}{'pg us/append':>14}{'events/stream':>15}")
        for r in range(args.rounds):
            for name, (step, conn, streams) in variants.items():
                before = backend_seconds(conn)
                n, elapsed = run_timed([step], args.seconds)
                used = backend_seconds(conn) - before
                per_stream = sum(streams.versions) // len(streams.versions)
                print(f"{r:>5}  {name:<24}{n / elapsed:>9,.0f}{used / n * 1e6:>14,.0f}{per_stream:>15,}")
    finally:
        for conn in connections:
            conn.close()
        server.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
