"""The test command behind ``./dart test``: finds or starts PostgreSQL, then runs pytest over tests/.

PostgreSQL, in order: ``DART_TEST_DATABASE_URL``; the local default server; a throwaway cluster started
from PostgreSQL's binaries when they are installed. With none, everything else runs and a banner says the
PostgreSQL tests were skipped; with ``DART_REQUIRE_POSTGRES=1`` (CI) that is a failure instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

HERE = Path(__file__).resolve().parent
LOCAL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
BANNER = "!" * 78


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory, for machines without a running server."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) + [shutil.which("initdb") or ""]
        initdb = next((b for b in bins if b and os.path.exists(b)), None)
        if initdb is None:
            raise FileNotFoundError("no initdb")
        self.bindir = Path(initdb).parent
        self.dir = Path(tempfile.mkdtemp(prefix="dart-pg-"))
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")

    def start(self) -> str:
        data = self.dir / "data"
        subprocess.run(
            [*self.prefix, str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
            check=True, capture_output=True,
        )
        subprocess.run(
            [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(self.dir / "log"),
             "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start"],
            check=True, capture_output=True,
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresSkipGuard:
    """Counts PostgreSQL tests that were skipped, so CI can refuse a run that did not execute them."""

    def __init__(self) -> None:
        self.skipped: list[str] = []
        self.ran = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "postgres" not in report.keywords:
            return
        if report.skipped:
            self.skipped.append(report.nodeid)
        elif report.when == "call":
            self.ran += 1


def main(argv: list[str]) -> int:
    required = os.environ.get("DART_REQUIRE_POSTGRES") == "1"
    url = os.environ.get("DART_TEST_DATABASE_URL")
    cluster: ThrowawayCluster | None = None
    if url:
        if not reachable(url):
            print(f"DART_TEST_DATABASE_URL={url} is not reachable", file=sys.stderr)
            return 2
    elif reachable(LOCAL_DEFAULT):
        url = LOCAL_DEFAULT
    else:
        try:
            cluster = ThrowawayCluster()
            url = cluster.start()
            print(f"tests: started a throwaway PostgreSQL cluster at {url}")
        except (FileNotFoundError, subprocess.CalledProcessError, KeyError, PermissionError) as exc:
            print(f"tests: no PostgreSQL server and could not start one ({exc})", file=sys.stderr)
            cluster = None
            url = None
    if url:
        os.environ["DART_TEST_DATABASE_URL"] = url
    elif required:
        print(f"{BANNER}\nPostgreSQL is required (DART_REQUIRE_POSTGRES=1) but none is reachable\n{BANNER}")
        return 3
    guard = PostgresSkipGuard()
    try:
        code = pytest.main(["-c", str(HERE.parent / "setup.cfg"), "--rootdir", str(HERE.parent), *argv],
                           plugins=[guard])
    finally:
        if cluster is not None:
            cluster.stop()
    if guard.skipped:
        print(f"\n{BANNER}\n{len(guard.skipped)} PostgreSQL test(s) were SKIPPED: PostgreSQL was not tested."
              f"\nSet DART_TEST_DATABASE_URL or install PostgreSQL to run them.\n{BANNER}")
        if required and code == 0:
            return 4
    elif url:
        print(f"tests: {guard.ran} PostgreSQL test(s) ran against {url}")
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        return 5
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
