"""Load benchmark of dart's REST API (`dart api`, gunicorn gthread) against "the limit": a bare Falcon +
psycopg endpoint (bench/api_bare.py) answering the same requests from the same ``rm_action`` table.

    .venv/bin/python -m bench.api_bench [--quick] [--database-url URL] [--workers 2] [--threads 8]
        [--seconds S] [--rounds N] [--scenarios abc] [--no-index-experiment] [--profile] [--keep] [--smoke]

One run:

1. creates a fresh database ``dart_apibench_<pid>`` on the server ``URL`` (default
   postgresql://postgres@127.0.0.1:5432/postgres or $DART_BENCH_DATABASE_URL), migrates it and loads
   10,000 workflows and 100,000 actions (``--quick``: 1,000 / 10,000) as real events, ~500 per append, with
   dart's inline projections filling ``rm_workflow`` / ``rm_action`` (bench/api_fill.py); then VACUUM
   ANALYZE, the steady state of a live database;
2. starts ``dart api`` (gunicorn gthread; 2 workers x 8 threads by default, dart's own default, kept after
   trying 2x4, 4x2 and 3x4 on 2 cores: none did better) with DART_BOOTSTRAP_API_KEY and DART_HOME in a
   temp dir, and the bare endpoint under the same gunicorn settings;
3. checks that both answer a sample of every scenario's requests with the same JSON;
4. drives each with ``wrk`` (C, epoll; 8 keep-alive connections on 2 threads, one request in flight per
   connection: 8 concurrent clients) for a fixed time per scenario, after a warm-up:
   (a) ``GET /api/1/action?filters=["state = COMPLETED","workflow_id = <random workflow>"]&limit=20``
   (b) ``GET /api/1/action?filters=["order_idx > 5","state = QUEUED"]&order_by=["order_idx ASC"]&limit=20``
   (c) ``GET /api/1/action/<random id>``
   recording requests/s, p50/p99 latency, the CPU the server's workers and its PostgreSQL backends used per
   request (/proc), and how busy the rest of the machine was meanwhile. Targets are interleaved round by
   round, alternating who goes first;
5. (unless --no-index-experiment) adds expression indexes for the two filters to the benchmark database and
   measures (a) and (b) again;
6. prints a table, the server time and plan of each list query (EXPLAIN ANALYZE), and one line
   ``BENCH_JSON {...}``.

``--profile`` adds untimed load runs with py-spy (``--gil``) on dart's workers and prints where their
Python CPU goes (bench/api_profile.py). Needs ``wrk`` (apt-get install -y wrk) and, for --profile, py-spy.
``--smoke`` runs every step once on 100 workflows / 1,000 actions with 1 s runs: whether it still works (CI).

This module runs the steps; the parts are bench/api_fill.py (the data set), bench/api_bare.py (the limit),
bench/api_load.py (servers, wrk, CPU accounting), bench/api_queries.py (the list SQL, its plans, the
indexes), bench/api_report.py (table and verdicts) and bench/api_profile.py (py-spy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench import api_fill
from bench.api_load import AUTH, CLIENTS, KEY, SECRET, Plan, Run, Server, combine, free_port, log, measure
from bench.api_profile import profile
from bench.api_queries import INDEXES, query_plans
from bench.api_report import machine_info, print_report, verdicts

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCENARIOS = "abc"
FULL = Plan(workflows=10_000, actions=100_000, seconds=15.0, warmup=3.0, rounds=2)
QUICK = Plan(workflows=1_000, actions=10_000, seconds=4.0, warmup=1.0, rounds=1)
# Every step once, in seconds: that the benchmark still runs (CI), not what it would measure.
SMOKE = Plan(workflows=100, actions=1_000, seconds=1.0, warmup=0.0, rounds=1)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def with_database(server_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(libpq(server_url))
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))



def get_json(base: str, path: str) -> tuple[int, Any]:
    req = urllib.request.Request(base + path, headers={"Authorization": AUTH})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def list_path(filters: list[str], order_by: list[str] | None = None, limit: int = 20) -> str:
    query = {"filters": json.dumps(filters), "limit": str(limit)}
    if order_by:
        query["order_by"] = json.dumps(order_by)
    return "/api/1/action?" + urllib.parse.urlencode(query)


def scenario_paths(filled: api_fill.Filled) -> dict[str, list[str]]:
    """Every request path a scenario draws from (wrk picks one at random per request)."""
    return {
        "a": [list_path(["state = COMPLETED", f"workflow_id = {w}"]) for w in filled.workflow_ids],
        "b": [list_path(["order_idx > 5", "state = QUEUED"], ["order_idx ASC"])],
        "c": [f"/api/1/action/{a}" for a in filled.action_ids],
    }



def check_same_answers(dart: Server, bare: Server, paths: dict[str, list[str]]) -> list[str]:
    """Both servers must give the same JSON for a sample of every scenario's requests."""
    checked = []
    for options in paths.values():
        for path in options[:3] + options[-2:]:
            d_status, d_body = get_json(dart.base, path)
            b_status, b_body = get_json(bare.base, path)
            if d_status != 200 or b_status != 200 or d_body != b_body:
                raise RuntimeError(f"dart and bare disagree on {path}:\n dart {d_status} {str(d_body)[:600]}"
                                   f"\n bare {b_status} {str(b_body)[:600]}")
            checked.append(path)
    return checked



# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 workflows / 10,000 actions, 4 s runs")
    parser.add_argument("--smoke", action="store_true",
                        help="100 workflows / 1,000 actions, 1 s runs, no warm-up: checks that it runs (CI)")
    parser.add_argument("--database-url",
                        default=os.environ.get("DART_BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
                        help="a PostgreSQL server URL (a database the user may connect to)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both servers (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 15, quick 4)")
    parser.add_argument("--rounds", type=int, help="timed runs per scenario and target (default 2, quick 1)")
    parser.add_argument("--scenarios", default=SCENARIOS, help="which scenarios to run (default abc)")
    parser.add_argument("--no-index-experiment", action="store_true", help="skip the indexed re-runs")
    parser.add_argument("--profile", action="store_true",
                        help="after the timed runs, py-spy dart's workers under each scenario's load")
    parser.add_argument("--keep", action="store_true", help="keep the database and the temp dir")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("api_bench: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    plan = Plan(plan.workflows, plan.actions, args.seconds or plan.seconds, plan.warmup,
                args.rounds or plan.rounds)
    scenarios = [s for s in args.scenarios if s in SCENARIOS]

    server_url = libpq(args.database_url)
    database = f"dart_apibench_{os.getpid()}"
    url = with_database(server_url, database)
    workdir = Path(tempfile.mkdtemp(prefix="dart_apibench_"))
    home = workdir / "home"
    home.mkdir()
    servers: list[Server] = []
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            info = machine_info(conn)
        log(f"api_bench: {plan.workflows:,} workflows, {plan.actions:,} actions in {database}; "
            f"{args.workers} workers x {args.threads} threads; {CLIENTS} clients; "
            f"{plan.rounds} x {plan.seconds:g} s runs")
        filled = api_fill.fill(url, home / "fill", plan.workflows, plan.actions, (KEY, SECRET), progress=log)
        log(f"loaded {filled.events:,} events in {filled.seconds:.1f} s "
            f"({filled.events_per_second:,.0f} events/s); rows: {filled.counts}")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            sizes = {}
            for t in ("rm_action", "rm_workflow", "events"):
                row = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", (t,)).fetchone()
                sizes[t] = row[0] if row else "?"
        log(f"table sizes: {sizes}")

        env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        dart_env = {**env, "DART_HOME": str(home), "DART_DATABASE_URL": url, "DART_LOG_FORMAT": "json",
                    "DART_BOOTSTRAP_API_KEY": f"{KEY}:{SECRET}"}
        gunicorn = ["--workers", str(args.workers), "--threads", str(args.threads)]
        dart = Server("dart", [sys.executable, "-m", "services.runtime.cli", "api",
                               "--port", str(free_port()), *gunicorn], dart_env, workdir)
        servers.append(dart)
        bare = Server("bare", [sys.executable, "-m", "bench.api_bare", "--database-url", url,
                               "--port", str(free_port()), *gunicorn], env, workdir)
        servers.append(bare)
        paths = scenario_paths(filled)
        checked = check_same_answers(dart, bare, paths)
        log(f"dart and bare give the same JSON for {len(checked)} sample requests")
        files = {}
        for scenario, lines in paths.items():
            files[scenario] = workdir / f"paths_{scenario}.txt"
            files[scenario].write_text("\n".join(lines) + "\n")

        profile_dir = workdir / "profiles" if args.profile else None
        if profile_dir:
            profile_dir.mkdir()
        runs: list[Run] = []
        every_round: list[Run] = []
        plans: dict[str, Any] = {}
        profiles: dict[str, Any] = {}
        sample_workflow = filled.workflow_ids[len(filled.workflow_ids) // 2]
        with psycopg.connect(server_url, autocommit=True) as admin, \
                psycopg.connect(url, autocommit=True) as db:
            plans["as shipped"] = query_plans(db, sample_workflow)
            for variant in [""] if args.no_index_experiment else ["", "indexed"]:
                if variant == "indexed":
                    for name, ddl in INDEXES:
                        db.execute(ddl.format(name=name))
                    db.execute("ANALYZE rm_action")
                    plans["indexed"] = query_plans(db, sample_workflow)
                mine = [s for s in scenarios if not (variant == "indexed" and s == "c")]  # c: primary key
                for i, scenario in enumerate(mine):
                    rounds: dict[str, list[Run]] = {"dart": [], "bare": []}
                    for r in range(plan.rounds):
                        # Interleaved, who goes first alternating, so drifts in the machine's load hit both.
                        for server in [dart, bare] if (i + r) % 2 == 0 else [bare, dart]:
                            run = measure(server, scenario, variant, files[scenario], plan, admin, database)
                            rounds[server.name].append(run)
                            every_round.append(run)
                            log(f"  {scenario} {variant or 'as shipped':10} {server.name:4} round {r + 1}: "
                                f"{run.rps:8,.0f} req/s  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms  "
                                f"errors {run.errors}  CPU ms/req app {run.app_cpu_ms_per_req:.2f} "
                                f"db {run.db_cpu_ms_per_req:.2f} wrk {run.wrk_cpu_ms_per_req:.2f}  "
                                f"other processes {run.other_cpu_pct:.0f}% of the machine")
                    runs += [combine(rounds["dart"]), combine(rounds["bare"])]
                if profile_dir:
                    for scenario in mine:
                        key = f"dart_{scenario}{'_' + variant if variant else ''}"
                        profiles[key] = profile(dart, scenario, variant, files[scenario], plan, profile_dir)
                        log(f"  profiled {key}: {profiles[key]['busy_samples']} samples")

        print_report(plan, args, runs, plans, profiles)
        result = {
            "bench": "api", "quick": args.quick, "smoke": args.smoke, "machine": info,
            "workers": args.workers, "threads": args.threads, "clients": CLIENTS, "seconds": plan.seconds,
            "rounds": plan.rounds,
            "workflows": plan.workflows, "actions": plan.actions,
            "load": {"events": filled.events, "seconds": round(filled.seconds, 1),
                     "events_per_s": round(filled.events_per_second)},
            "sizes": sizes, "runs": [{**asdict(r), "cpu_capacity": round(r.cpu_capacity)} for r in runs],
            "every_round": [asdict(r) for r in every_round], "targets": verdicts(runs), "plans": plans,
            "profiles": profiles,
        }
        print("BENCH_JSON " + json.dumps(result, separators=(",", ":")))
        return 0
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            log(f"kept database {database} and {workdir}")
        else:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(database)))
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
