"""The PostgreSQL server a store benchmark or probe runs on: its throw-away databases, the CPU its backends
use (read from /proc when the server is local), its settings, and what else is busy on it; plus the machine
and commit the numbers were taken on."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


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
            settings: dict[str, str] = dict(
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
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
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

