"""Load benchmark of dart's REST API (`dart api`, gunicorn gthread) against "the limit": a bare Falcon +
psycopg endpoint (bench/api_bare.py) answering the same requests from the same ``rm_action`` table.

    .venv/bin/python -m bench.api_bench [--quick] [--database-url URL] [--workers 2] [--threads 8]
        [--seconds S] [--rounds N] [--scenarios abc] [--no-index-experiment] [--profile] [--keep]

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
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench import api_bare, api_fill

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
KEY, SECRET = "BENCHADMINKEY", "bench-admin-secret-0123456789"
AUTH = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
CLIENTS = 8
WRK_THREADS = 2
TICKS = os.sysconf("SC_CLK_TCK")
TARGET_RATIO = 0.5  # the bar: filtered lists at >= 50% of the bare endpoint's rate ...
TARGET_P99_MS = 100.0  # ... and p99 under 100 ms at 8 concurrent clients
SCENARIOS = "abc"

# The experiment's indexes. dart's filters read a path as `data #>> $1::text[]` (text) and
# `CASE WHEN jsonb_typeof(data #> $1::text[]) = 'number' THEN ... END` (numeric), the path bound as a
# parameter; the bare endpoint writes `data ->> 'key'`. Each gets the index matching its own expression.
INDEXES = [
    ("ix_bench_action_wf_path", "CREATE INDEX {name} ON rm_action ((data #>> '{{workflow_id}}'::text[]))"),
    ("ix_bench_action_wf_arrow", "CREATE INDEX {name} ON rm_action ((data ->> 'workflow_id'))"),
    ("ix_bench_action_state_idx_path",
     "CREATE INDEX {name} ON rm_action (state, (CASE WHEN jsonb_typeof(data #> '{{order_idx}}'::text[]) = "
     "'number' THEN ((data #> '{{order_idx}}'::text[]) #>> '{{}}')::numeric END))"),
    ("ix_bench_action_state_idx_arrow",
     "CREATE INDEX {name} ON rm_action (state, (CASE WHEN jsonb_typeof(data -> 'order_idx') = 'number' "
     "THEN (data ->> 'order_idx')::numeric END))"),
]

# What dart sends for scenarios (a) and (b) (SQLAlchemy over psycopg, parameters bound server-side), as
# its statement log shows them; used to EXPLAIN ANALYZE them with the same parameters.
_DART_COLUMNS = ("rm_action.id, rm_action.version, rm_action.created, rm_action.updated, rm_action.state, "
                 "rm_action.name, rm_action.data")
_DART_A_WHERE = "rm_action.state = %s::VARCHAR AND (rm_action.data #>> %s::TEXT[]) = %s::VARCHAR"
_DART_NUMERIC = ("CASE WHEN (jsonb_typeof(rm_action.data #> %s::TEXT[]) = %s::VARCHAR) "
                 "THEN CAST((rm_action.data #> %s::TEXT[]) #>> '{}' AS NUMERIC) END")
_DART_B_WHERE = f"{_DART_NUMERIC} > %s AND rm_action.state = %s::VARCHAR"
DART_SQL = {
    "a_count": f"SELECT count(*) AS count_1 FROM rm_action WHERE {_DART_A_WHERE}",
    "a_page": f"SELECT {_DART_COLUMNS} FROM rm_action WHERE {_DART_A_WHERE} "
              "ORDER BY rm_action.updated DESC, rm_action.id DESC LIMIT %s::INTEGER OFFSET %s::INTEGER",
    "b_count": f"SELECT count(*) AS count_1 FROM rm_action WHERE {_DART_B_WHERE}",
    "b_page": f"SELECT {_DART_COLUMNS} FROM rm_action WHERE {_DART_B_WHERE} "
              f"ORDER BY {_DART_NUMERIC} ASC NULLS LAST, rm_action.id LIMIT %s::INTEGER OFFSET %s::INTEGER",
}


@dataclass(frozen=True)
class Plan:
    workflows: int
    actions: int
    seconds: float
    warmup: float
    rounds: int


FULL = Plan(workflows=10_000, actions=100_000, seconds=15.0, warmup=3.0, rounds=2)
QUICK = Plan(workflows=1_000, actions=10_000, seconds=4.0, warmup=1.0, rounds=1)


@dataclass
class Run:
    scenario: str
    target: str  # dart | bare
    variant: str  # "" (as shipped) | "indexed"
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connect/read/write errors, timeouts and non-2xx/3xx answers (wrk)
    app_cpu_ms_per_req: float  # the server's gunicorn workers
    db_cpu_ms_per_req: float  # every PostgreSQL backend connected to the benchmark database
    wrk_cpu_ms_per_req: float
    other_cpu_pct: float  # CPU of everything else on the machine meanwhile, % of all cores
    machine_cpu_pct: float
    rounds: list[float] = field(default_factory=list)  # req/s of each round

    @property
    def cpu_capacity(self) -> float:
        """req/s the server's CPU cost (app + PostgreSQL) would allow on all cores of this machine: a rate
        that does not depend on how busy the rest of the machine was."""
        cost = self.app_cpu_ms_per_req + self.db_cpu_ms_per_req
        return (os.cpu_count() or 1) * 1000.0 / cost if cost else 0.0


# ------------------------------------------------------------------------------------------- plumbing
def log(message: str) -> None:
    print(message, flush=True)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def with_database(server_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(libpq(server_url))
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}")
        try:
            urllib.request.urlopen(base + "/health", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{base} did not answer /health in {timeout} s:\n{log_path.read_text()[-4000:]}")


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


class Server:
    """A gunicorn server in its own session: ``dart api`` or the bare endpoint."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = int(cmd[cmd.index("--port") + 1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_healthy(self.base, self.proc, self.log_path)

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # gunicorn's graceful stop of master and workers
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------------------------- CPU accounting
def _stat(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(entry)[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def cpu_ticks(pid: int) -> int:
    try:
        fields = _stat(pid)
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def backend_pids(conn: psycopg.Connection[Any], database: str) -> list[int]:
    rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                        (database,)).fetchall()
    return [r[0] for r in rows]


# ------------------------------------------------------------------------------------------------ load
def run_wrk(base: str, paths_file: Path, seconds: float) -> subprocess.Popen[str]:
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{CLIENTS}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
           "-s", str(ROOT / "bench" / "api_wrk.lua"), base, "--", str(paths_file), AUTH]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_wrk(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate()
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            return dict(json.loads(line[len("WRK_JSON "):]))
    raise RuntimeError(f"wrk gave no result: {out}\n{err}")


def measure(
    server: Server, scenario: str, variant: str, paths_file: Path, plan: Plan,
    admin: psycopg.Connection[Any], database: str,
) -> Run:
    """One timed wrk run (after a warm-up) with the CPU the target's workers and backends used meanwhile."""
    if plan.warmup:
        finish_wrk(run_wrk(server.base, paths_file, plan.warmup))
    workers = server.workers()
    backends = backend_pids(admin, database)
    before = {p: cpu_ticks(p) for p in workers + backends}
    busy0, total0 = machine_ticks()
    proc = run_wrk(server.base, paths_file, plan.seconds)
    wrk_ticks = 0
    while proc.poll() is None:  # sample wrk's own CPU while it runs (its /proc entry goes when it exits)
        wrk_ticks = max(wrk_ticks, cpu_ticks(proc.pid))
        time.sleep(0.2)
    result = finish_wrk(proc)
    busy1, total1 = machine_ticks()
    backends_after = backend_pids(admin, database)
    app = sum(cpu_ticks(p) - before.get(p, 0) for p in workers)
    db = sum(cpu_ticks(p) - before.get(p, 0) for p in set(backends) | set(backends_after))
    requests = result["requests"]
    seconds = result["duration_us"] / 1e6
    per_request = (lambda ticks: round(ticks * 1000.0 / TICKS / requests, 3)) if requests else (lambda t: 0.0)
    machine_busy = busy1 - busy0
    span = max(1, total1 - total0)
    other = max(0, machine_busy - app - db - wrk_ticks)
    return Run(
        scenario=scenario, target=server.name, variant=variant, requests=requests, seconds=round(seconds, 2),
        rps=round(requests / seconds, 1) if seconds else 0.0,
        p50_ms=result["p50_us"] / 1000, p90_ms=result["p90_us"] / 1000, p99_ms=result["p99_us"] / 1000,
        max_ms=result["max_us"] / 1000, errors=sum(v for k, v in result.items() if k.startswith("errors_")),
        app_cpu_ms_per_req=per_request(app), db_cpu_ms_per_req=per_request(db),
        wrk_cpu_ms_per_req=per_request(wrk_ticks),
        other_cpu_pct=round(100.0 * other / span, 1), machine_cpu_pct=round(100.0 * machine_busy / span, 1),
        rounds=[round(requests / seconds, 1) if seconds else 0.0],
    )


def combine(rounds: list[Run]) -> Run:
    """Rounds of one (scenario, variant, target): req/s over all of them; latencies and CPU the mean."""
    if len(rounds) == 1:
        return rounds[0]
    requests = sum(r.requests for r in rounds)
    seconds = sum(r.seconds for r in rounds)

    def mean(name: str) -> float:
        return round(sum(getattr(r, name) for r in rounds) / len(rounds), 3)

    first = rounds[0]
    return Run(
        scenario=first.scenario, target=first.target, variant=first.variant, requests=requests,
        seconds=round(seconds, 2), rps=round(requests / seconds, 1) if seconds else 0.0,
        p50_ms=mean("p50_ms"), p90_ms=mean("p90_ms"), p99_ms=mean("p99_ms"),
        max_ms=max(r.max_ms for r in rounds), errors=sum(r.errors for r in rounds),
        app_cpu_ms_per_req=mean("app_cpu_ms_per_req"), db_cpu_ms_per_req=mean("db_cpu_ms_per_req"),
        wrk_cpu_ms_per_req=mean("wrk_cpu_ms_per_req"), other_cpu_pct=mean("other_cpu_pct"),
        machine_cpu_pct=mean("machine_cpu_pct"), rounds=[r.rps for r in rounds],
    )


# -------------------------------------------------------------------------------------------- profiling
def start_profile(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("  (py-spy is not installed: .venv/bin/pip install py-spy)")
        return None
    # --gil: only the thread holding the GIL, i.e. where the worker's Python CPU time goes.
    return subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "200",
                             "--gil", "-f", "raw", "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile(
    server: Server, scenario: str, variant: str, paths_file: Path, plan: Plan, out_dir: Path
) -> dict[str, Any]:
    """An extra, untimed load run with py-spy on every worker: where the workers' Python CPU goes."""
    from bench.api_profile import summarise

    seconds = max(4.0, plan.seconds)
    proc = run_wrk(server.base, paths_file, seconds + 1)
    time.sleep(0.5)
    out = out_dir / f"{server.name}_{scenario}{'_' + variant if variant else ''}.txt"
    spies = [spy for i, pid in enumerate(server.workers())
             if (spy := start_profile(pid, out.with_suffix(f".{i}"), seconds - 1)) is not None]
    for spy in spies:
        spy.wait()
    finish_wrk(proc)
    parts = sorted(out.parent.glob(out.stem + ".[0-9]*"))
    out.write_text("".join(p.read_text() for p in parts if p.exists()))
    return summarise(out)


# ------------------------------------------------------------------------------------------- DB checks
def explain(conn: psycopg.Connection[Any], query: str, params: list[Any]) -> dict[str, Any]:
    """EXPLAIN ANALYZE with the parameters bound server-side, as both apps send them (a custom plan); the
    fastest of three, so a cold cache does not decide."""
    best: dict[str, Any] = {}
    for _ in range(3):
        row = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, params).fetchone()
        plan = row[0][0] if row else {}
        nodes: list[str] = []

        def walk(node: dict[str, Any]) -> None:
            nodes.append(node["Node Type"] + (f" on {node['Index Name']}" if "Index Name" in node else ""))
            for child in node.get("Plans", []):
                walk(child)

        walk(plan["Plan"])
        ms = round(plan["Execution Time"] + plan["Planning Time"], 2)
        if not best or ms < best["ms"]:
            best = {"ms": ms, "plan": " > ".join(nodes)}
    return best


def query_plans(conn: psycopg.Connection[Any], workflow_id: str) -> dict[str, Any]:
    """Server time and plan of each list query, dart's SQL and the bare endpoint's, for one request."""
    a = ["COMPLETED", ["workflow_id"], workflow_id]
    b = [["order_idx"], "number", ["order_idx"], Decimal(5), "QUEUED"]
    out = {
        "dart_a_count": explain(conn, DART_SQL["a_count"], a),
        "dart_a_page": explain(conn, DART_SQL["a_page"], [*a, 20, 0]),
        "dart_b_count": explain(conn, DART_SQL["b_count"], b),
        "dart_b_page": explain(conn, DART_SQL["b_page"], [*b, ["order_idx"], "number", ["order_idx"], 20, 0]),
    }
    for key, filters, order in (("a", ["state = COMPLETED", f"workflow_id = {workflow_id}"], []),
                                ("b", ["order_idx > 5", "state = QUEUED"], ["order_idx ASC"])):
        params = {"filters": json.dumps(filters), "limit": "20"}
        if order:
            params["order_by"] = json.dumps(order)
        count_sql, page_sql, where_params, page_params, _, _ = api_bare.list_query(params.get)
        out[f"bare_{key}_count"] = explain(conn, count_sql, where_params)
        out[f"bare_{key}_page"] = explain(conn, page_sql, page_params)
    return out


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


# ---------------------------------------------------------------------------------------------- report
def machine_info(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])

    def show(name: str) -> str:
        row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
        return str(row[0]) if row else ""

    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgres": show("server_version"),
        "postgres_settings": {n: show(n) for n in ("shared_buffers", "work_mem", "jit",
                                                   "max_parallel_workers_per_gather")},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "wrk": wrk.split("\n")[0].strip(),
    }


def table(runs: list[Run]) -> str:
    lines = [
        "| scenario | indexes | target | req/s | p50 ms | p99 ms | errors | app CPU ms/req | DB CPU ms/req | "
        "CPU-bound req/s | other load % | dart/bare req/s | dart/bare CPU-bound |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r.scenario, r.variant, r.target): r for r in runs}
    for r in runs:
        bare = by.get((r.scenario, r.variant, "bare")) if r.target == "dart" else None
        ratio = f"{r.rps / bare.rps:.2f}" if bare and bare.rps else ""
        cpu_ratio = f"{r.cpu_capacity / bare.cpu_capacity:.2f}" if bare and bare.cpu_capacity else ""
        lines.append(
            f"| {r.scenario} | {'+ expression indexes' if r.variant else 'as shipped'} | {r.target} | "
            f"{r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {r.app_cpu_ms_per_req:.2f} | "
            f"{r.db_cpu_ms_per_req:.2f} | {r.cpu_capacity:,.0f} | {r.other_cpu_pct:.0f} | {ratio} | "
            f"{cpu_ratio} |"
        )
    return "\n".join(lines)


def verdicts(runs: list[Run]) -> list[dict[str, Any]]:
    by = {(r.scenario, r.variant, r.target): r for r in runs}
    out = []
    for (scenario, variant, target), r in by.items():
        if target != "dart" or scenario not in ("a", "b"):
            continue
        bare = by[(scenario, variant, "bare")]
        ratio = r.rps / bare.rps if bare.rps else 0.0
        out.append({"scenario": scenario, "variant": variant or "as shipped", "ratio": round(ratio, 2),
                    "ratio_ok": ratio >= TARGET_RATIO, "p99_ms": r.p99_ms,
                    "p99_ok": r.p99_ms < TARGET_P99_MS, "bare_p99_ms": bare.p99_ms})
    return out


def print_report(plan: Plan, args: argparse.Namespace, runs: list[Run], plans: dict[str, Any],
                 profiles: dict[str, Any]) -> None:
    print()
    print(f"REST API benchmark: {plan.workflows:,} workflows / {plan.actions:,} actions; {CLIENTS} clients "
          f"(wrk); {args.workers} gunicorn workers x {args.threads} threads; {plan.rounds} x "
          f"{plan.seconds:g} s per scenario and target")
    print(table(runs))
    print()
    for v in verdicts(runs):
        print(f"  target ({v['scenario']}, {v['variant']}): dart/bare {v['ratio']:.2f} "
              f"({'meets' if v['ratio_ok'] else 'MISSES'} >= {TARGET_RATIO:.0%}); p99 {v['p99_ms']:.1f} ms "
              f"({'meets' if v['p99_ok'] else 'MISSES'} < {TARGET_P99_MS:.0f} ms; "
              f"bare {v['bare_p99_ms']:.1f})")
    print()
    print("server time of one request's list queries (EXPLAIN ANALYZE, best of 3, ms) and plan:")
    for variant, found in plans.items():
        for name, value in found.items():
            print(f"  {variant:10} {name:13} {value['ms']:8.2f}  {value['plan']}")
    for name, summary in profiles.items():
        print(f"\npy-spy --gil, {name}: share of the workers' Python CPU ({summary['busy_samples']} samples)")
        for label, share in summary["groups"]:
            print(f"  {share:5.1f}%  {label}")
        print("  steps (inclusive):")
        for label, share in summary["steps"]:
            print(f"  {share:5.1f}%  {label}")


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 workflows / 10,000 actions, 4 s runs")
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
    plan = QUICK if args.quick else FULL
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
        dart = Server("dart", [sys.executable, "-m", "services.runtime.cli", "api", "--port", str(free_port()),
                               *gunicorn], dart_env, workdir)
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
            "bench": "api", "quick": args.quick, "machine": info, "workers": args.workers,
            "threads": args.threads, "clients": CLIENTS, "seconds": plan.seconds, "rounds": plan.rounds,
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
