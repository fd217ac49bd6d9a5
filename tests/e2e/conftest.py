"""A running dart for black-box tests: `dart up` as a real process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.api_client import Api
from tests.support import pg

KEY, SECRET = "TESTADMINKEY", "test-admin-secret"
BACKENDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningDart:
    def __init__(self, home: Path, database_url: str | None, **extra_env: str) -> None:
        self.home = home
        self.database_url = database_url
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
        env.update(DART_HOME=str(home), DART_BOOTSTRAP_API_KEY=f"{KEY}:{SECRET}", DART_LOG_FORMAT="json")
        if database_url:
            env["DART_DATABASE_URL"] = database_url
        env.update(extra_env)
        self.log = open(home / "dart.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--port", str(self.port)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dart up exited: {(home / 'dart.log').read_text()}")
            try:
                urllib.request.urlopen(self.base + "/health", timeout=2).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dart up did not answer /health within 60 s")

    def api(self, key: str | None = KEY, secret: str | None = SECRET) -> Api:
        return Api(self.base + "/api/1", key, secret)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module", params=BACKENDS)
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    home = tmp_path_factory.mktemp(f"dart-{request.param}")
    if request.param == "postgres":
        server = pg.server_url_from_env()
        if server is None:
            pytest.skip(pg.SKIP_REASON)
        with pg.temporary_database(server) as url:
            running = RunningDart(home, url)
            try:
                yield running
            finally:
                running.stop()
    else:
        running = RunningDart(home, None)
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def api(dart: RunningDart) -> Api:
    return dart.api()
