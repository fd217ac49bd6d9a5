"""The load side of the REST API benchmark: a gunicorn server in its own session (``dart api`` or the bare
endpoint), wrk driving it with 8 keep-alive clients, and the CPU the server's workers, its PostgreSQL
backends, wrk and the rest of the machine used meanwhile (/proc)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
KEY, SECRET = "BENCHADMINKEY", "bench-admin-secret-0123456789"
AUTH = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
CLIENTS = 8
WRK_THREADS = 2
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Plan:
    workflows: int
    actions: int
    seconds: float
    warmup: float
    rounds: int



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



def log(message: str) -> None:
    print(message, flush=True)



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

