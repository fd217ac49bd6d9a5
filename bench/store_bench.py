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

This module runs the measurements and reports; the parts are bench/store_targets.py (what appends: dart,
bare, peer), bench/store_rounds.py (timed, interleaved rounds), bench/store_reads.py (read_all and the
rebuild) and bench/pg_server.py (the server's databases, its CPU, the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.pg_server import DEFAULT_SERVER_URL, Server, machine
from bench.store_gapcheck import GapCheck
from bench.store_reads import measure_reads, measure_rebuild
from bench.store_rounds import Measured, interleaved, measure, run_timed
from bench.store_targets import (
    BARE_INSERT,
    BENCH_TYPE,
    METADATA,
    METADATA_JSON,
    STREAMS_PER_WRITER,
    BareTarget,
    BenchWorkflowUpdated,
    DartAnyTarget,
    DartTarget,
    PeerTarget,
    Streams,
    Target,
    make_payloads,
)

# The pieces bench/append_anatomy.py takes from this module (they now live in the modules imported above).
__all__ = [
    "BARE_INSERT", "BENCH_TYPE", "DEFAULT_SERVER_URL", "METADATA", "METADATA_JSON", "BenchWorkflowUpdated",
    "Server", "Streams", "main", "make_payloads", "measure", "run_timed",
]

WRITERS = 8
BATCH = 100


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
    info: dict[str, Any] = {"machine": machine(), "postgres": server.describe(), "mode": "quick" if args.quick else "full"}
    payloads = make_payloads(rng)
    measured: list[Measured] = []
    noise: list[dict[str, Any]] = []
    targets: list[Target] = []
    rebuild: dict[str, Any] = {"available": False, "reason": "not run"}
    gap: dict[str, Any] = {"gap_free": False, "seen": 0, "events": 0, "reads": 0, "skipped": 0}
    grouping: dict[str, Any] = {}
    loads: dict[str, float] = {}
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
        gap_check = GapCheck(dart.store, server.conninfo(dart_db))  # tails dart's log through every run

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
            load = round(os.getloadavg()[0], 2)
            for name, samples in got.items():
                loads[f"{name}.{kind}.{writers}w"] = load
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

        gap = gap_check.result()
        committer = getattr(dart.store, "_committer", None)
        grouping = ({"groups": committer.groups, "appends_in_groups": committer.grouped}
                    if committer is not None else {})
        log(f"gap-free check over dart's log: {gap}; group commit: {grouping}")
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
         values["dart.single.1w"] / values["bare.single.1w"], 0.95),
        (f"dart {w}-writer single / bare {w}-writer single",
         values[f"dart.single.{w}w"] / values[f"bare.single.{w}w"], 0.80),
        (f"dart {w}-writer single / eventsourcing {w}-writer single",
         values[f"dart.single.{w}w"] / values[f"eventsourcing.single.{w}w"], 1.8),
    ]
    if rebuild.get("available"):
        ratios.append((f"rebuild log events/s / bare 1-writer {b}-row batch rows/s",
                       rebuild["events_per_second"] / values[f"bare.batch{b}.1w"], 0.60))
    context = [  # no target: where the rest stands
        ("dart-any (ANY version) 1-writer single / bare 1-writer single",
         values["dart-any.single.1w"] / values["bare.single.1w"]),
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
    print(f"{'measurement'.ljust(width)}{'median':>10}  {'cpu us/ev':>9} {'pg us/ev':>8} {'load':>5}  "
          "rounds (events/s)")
    print("-" * (width + 70))
    for m in measured:
        client, backend = m.cpu()
        print(
            f"{m.label.ljust(width)}{m.value:>10,.0f}  {_num(client):>9} {_num(backend):>8} "
            f"{loads.get(m.key, os.getloadavg()[0]):>5.2f}  "
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
    print(f"gap-free order (a reader tailed dart's log through every append run): "
          f"{'PROVEN' if gap['gap_free'] else 'FAILED'}: {gap['seen']:,} of {gap['events']:,} positions seen in "
          f"order in {gap['reads']:,} reads, {gap['skipped']} skipped; group commit {grouping}")
    print("(the machine is shared: compare numbers within one run only; load = 1-min load average after "
          "each measurement)")
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
        "loadavg_by_measurement": loads,
        "gap_check": gap,
        "group_commit": grouping,
        "wall_seconds": round(time.perf_counter() - began, 1),
    }
    print("BENCH_JSON " + json.dumps(report, separators=(",", ":"), default=str))
    return 0 if gap["gap_free"] else 1


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


if __name__ == "__main__":
    sys.exit(main())
