"""A running dart on any wiring, for black-box tests and the benchmarks: one factory, ``running``.

Wirings:

- ``embedded-sqlite``: `dart up` as one process on SQLite (the default a user gets); engines are local child
  processes of `dart up`.
- ``embedded-postgres``: the same `dart up` on a fresh PostgreSQL database.
- ``production``: PostgreSQL, the SQS wire protocol (a moto server) as the broker, the ECS wire protocol (the
  same moto server, ``DART_ECS_CLUSTER`` + ``DART_AWS_ENDPOINT_URL``) with the test ECS agent
  (bench/harness/ecs_agent.py) starting each task's engine process, and every process on its own: `dart api`
  (gunicorn), `dart relay`, `dart worker orchestrator|launcher|scheduler|notifier|inbox`.
- ``production-amqp``: the same with RabbitMQ (AMQP) as the broker instead of SQS; ECS stays on moto.

External events reach dart only through the inbox queue (``<prefix>-inbox``, services/delivery/inbox.py),
which `dart worker inbox` consumes. `dart up` runs no inbox, so ``running(..., inbox=True)`` on an embedded
wiring starts `dart worker inbox` beside it, on the same database, with an SQS queue on a moto server.
``Running.inbox.send(body)`` puts a message on that queue with boto3, as an external producer would.

Every handle answers ``base``, ``api()``, ``kill_engine(action_id)``, ``lost_engine_message``,
``database_url``, ``consumer_caught_up(name, position)`` and ``stop()``.

Nothing here imports pytest: a wiring that cannot run here (no PostgreSQL server, RabbitMQ down) raises
``Unavailable``; tests/e2e/stacks.py turns that into the tests' skip or failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
import sqlalchemy as sa

from bench.harness import pg
from bench.harness.api_client import Api
from bench.harness.ecs_agent import EcsAgent
from bench.harness.moto import AWS_ENV, moto_server
from services.adapters.local_engines import engine_pids

KEY, SECRET = "TESTADMINKEY", "test-admin-secret"
EMBEDDED_SQLITE, EMBEDDED_POSTGRES = "embedded-sqlite", "embedded-postgres"
PRODUCTION, PRODUCTION_AMQP = "production", "production-amqp"
EMBEDDED = (EMBEDDED_SQLITE, EMBEDDED_POSTGRES)
CLUSTER = "dart-engines"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
RABBIT = ("127.0.0.1", 5672)
# Short enough that a message whose worker was killed comes back within seconds (kombu's default is 30 min).
SQS_VISIBILITY_TIMEOUT = "4"
# What a broker-fed worker logs once it is connected (kombu's ConsumerMixin).
READY_MARKER = '"Connected to '
LOCAL_LOST_ENGINE = "without checking in"
ECS_LOST_ENGINE = "the ECS task STOPPED unexpectedly"


class Unavailable(RuntimeError):
    """A wiring that cannot run on this machine now: no PostgreSQL server named, or RabbitMQ not running."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rabbit_up() -> bool:
    try:
        socket.create_connection(RABBIT, timeout=2).close()
        return True
    except OSError:
        return False


def sqs_broker_url(endpoint: str) -> str:
    return "sqs://testing:testing@" + endpoint.removeprefix("http://")


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
    env.update(DART_HOME=str(home), DART_BOOTSTRAP_API_KEY=f"{KEY}:{SECRET}", DART_LOG_FORMAT="json")
    return env


def _wait_healthy(base: str, alive: Any, log: Path, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited: {_tail(log)}")
        try:
            urllib.request.urlopen(base + "/health", timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer /health within {timeout:.0f} s: {_tail(log)}")


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _terminate(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class InboxQueue:
    """The inbox SQS queue as an external producer sees it: boto3 through the moto endpoint."""

    def __init__(self, endpoint: str, prefix: str) -> None:
        self.endpoint = endpoint
        self.name = f"{prefix}-inbox"
        self.sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint,
                                aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                                aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        self._url: str | None = None

    def url(self, timeout: float = 60.0) -> str:
        """The queue's URL, once `dart worker inbox` has declared the queue."""
        deadline = time.monotonic() + timeout
        while self._url is None:
            try:
                self._url = self.sqs.get_queue_url(QueueName=self.name)["QueueUrl"]
            except self.sqs.exceptions.QueueDoesNotExist:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the inbox queue {self.name} was never declared") from None
                time.sleep(0.1)
        return self._url

    def send(self, body: str) -> str:
        return str(self.sqs.send_message(QueueUrl=self.url(), MessageBody=body)["MessageId"])


class _Handle:
    """What every wiring's handle shares."""

    wiring: str
    home: Path
    base: str
    database_url: str
    lost_engine_message: str
    inbox: InboxQueue | None = None

    def api(self, key: str | None = KEY, secret: str | None = SECRET) -> Api:
        return Api(self.base + "/api/1", key, secret)

    def engine(self) -> sa.Engine:
        """A connection pool on dart's database, for the few checks the API cannot answer."""
        if getattr(self, "_engine", None) is None:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            self._engine = sa.create_engine(url)
        return self._engine

    def head_position(self) -> int:
        """The global position of the newest event in the log."""
        with self.engine().connect() as conn:
            return int(conn.execute(sa.text("SELECT coalesce(max(global_position), 0) FROM events")).scalar())

    def handled(self, consumer: str, cause: uuid.UUID) -> bool:
        """Whether a broker-fed consumer (the inbox) recorded a message or event as handled."""
        from services.delivery.records import consumer_records

        with self.engine().connect() as conn:
            found = conn.execute(sa.select(sa.literal(1)).where(
                consumer_records.c.consumer == consumer, consumer_records.c.event_id == cause)).first()
            return found is not None

    def consumer_caught_up(self, consumer: str, position: int, types: list[str]) -> bool:
        """Whether the consumer has handled every event of ``types`` up to ``position``: its checkpoint in the
        embedded mode (catch-up subscription), its (consumer, event_id) records through a broker."""
        from events.checkpoints import read_checkpoint

        with self.engine().connect() as conn:
            if self.wiring in EMBEDDED:
                return read_checkpoint(conn, consumer) >= position
            missing = conn.execute(sa.text(
                "SELECT count(*) FROM events e WHERE e.global_position <= :p AND e.type = ANY(:types)"
                " AND NOT EXISTS (SELECT 1 FROM consumer_records r WHERE r.consumer = :c"
                " AND r.event_id = e.event_id)"), {"p": position, "types": types, "c": consumer}).scalar()
            return missing == 0

    def close(self) -> None:
        if getattr(self, "_engine", None) is not None:
            self._engine.dispose()
            self._engine = None


class RunningDart(_Handle):
    """`dart up` as a real process on SQLite (``database_url`` None) or PostgreSQL, on a fixed port across
    restarts (engines it started find a restarted dart at the address they were given)."""

    lost_engine_message = LOCAL_LOST_ENGINE

    def __init__(self, home: Path, database_url: str | None, *, port: int | None = None,
                 up_args: tuple[str, ...] = (), **extra_env: str) -> None:
        self.home, self.up_args = home, up_args
        self.wiring = EMBEDDED_POSTGRES if database_url else EMBEDDED_SQLITE
        self.database_url = database_url or f"sqlite:///{home / 'dart.db'}"
        self.port = port or free_port()
        self.env = _base_env(home)
        if database_url:
            self.env["DART_DATABASE_URL"] = database_url
        self.env.update(extra_env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.starts = 0
        self.start()

    def start(self, **env_changes: str) -> None:
        """Start `dart up` (again, after ``stop`` or ``kill``), with these environment changes from now on."""
        self.env.update(env_changes)
        self.starts += 1
        with open(self.home / "dart.log", "ab") as log:
            log.write(f"\n--- dart up, start {self.starts}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.runtime.cli", "up", "--port", str(self.port), *self.up_args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(self.base, lambda: self.proc.poll() is None, self.home / "dart.log", "dart up")
        except BaseException:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def kill(self) -> None:
        """SIGKILL `dart up` (its engine processes live on, as they would)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def kill_engine(self, action_id: str) -> int:
        pids = engine_pids(action_id)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        _terminate(self.proc, 30)
        self.close()


class Production(_Handle):
    """PostgreSQL, a broker, ECS on moto with the test agent, and each dart process on its own."""

    lost_engine_message = ECS_LOST_ENGINE

    def __init__(self, home: Path, database_url: str, broker_url: str, aws_endpoint: str, agent: EcsAgent,
                 extra_env: dict[str, str], *, schedulers: int = 1, start_schedulers: bool = True) -> None:
        from services.runtime.composition import WORKERS

        self.home = home
        self.wiring = PRODUCTION if broker_url.startswith("sqs") else PRODUCTION_AMQP
        self.database_url = database_url
        self.agent = agent
        self.aws_endpoint = aws_endpoint
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self.env = _base_env(home)
        self.env.update(DART_DATABASE_URL=database_url, DART_BROKER_URL=broker_url,
                        DART_QUEUE_PREFIX=self.prefix, DART_API_URL=f"{self.base}/api/1",
                        DART_ECS_CLUSTER=CLUSTER, DART_AWS_ENDPOINT_URL=aws_endpoint, **AWS_ENV)
        if broker_url.startswith("sqs"):
            self.env["DART_SQS_VISIBILITY_TIMEOUT"] = SQS_VISIBILITY_TIMEOUT
            self.inbox = InboxQueue(aws_endpoint, self.prefix)
        self.env.update(extra_env)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.roles: dict[str, tuple[str, ...]] = {"relay": ("relay",)}
        self.roles.update({w: ("worker", w) for w in WORKERS if w != "scheduler"})
        self.scheduler_names = [f"scheduler-{i + 1}" for i in range(schedulers)]
        self.roles.update({n: ("worker", "scheduler") for n in self.scheduler_names})
        try:
            self.start("api")
            _wait_healthy(self.base, lambda: self.procs["api"].poll() is None, home / "api.log", "dart api")
            for name in self.roles:
                if name not in self.scheduler_names:
                    self.start(name)
            if start_schedulers:
                self.start_schedulers()
            for name in self.roles:
                if name not in self.scheduler_names and name != "relay":  # it connects at its first publish
                    self.wait_ready(name)
        except BaseException:
            self.stop(grace=0)
            raise

    def wait_ready(self, name: str, timeout: float = 120.0) -> None:
        """Wait until the process has connected to the broker (its log says so): a message published before
        would wait in its queue anyway, but the first test would pay for the start-up of every process."""
        log = self.home / f"{name}.log"
        marker = READY_MARKER
        deadline = time.monotonic() + timeout
        while marker not in _tail(log, 1_000_000):
            if not self.alive(name):
                raise RuntimeError(f"dart {' '.join(self.args(name))} exited: {_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dart {' '.join(self.args(name))} did not connect in {timeout:.0f} s")
            time.sleep(0.1)

    def args(self, name: str) -> tuple[str, ...]:
        if name == "api":
            return ("api", "--port", str(self.port), "--workers", "1", "--threads", "8")
        return self.roles[name]

    def start(self, name: str, **env_changes: str) -> None:
        with open(self.home / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "services.runtime.cli", *self.args(name)],
                env={**self.env, **env_changes}, stdout=log, stderr=subprocess.STDOUT)

    def start_schedulers(self, **env_changes: str) -> None:
        for name in self.scheduler_names:
            self.start(name, **env_changes)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def kill_engine(self, action_id: str) -> int:
        agent = self.agent
        assert agent.wait_for(lambda: bool((t := agent.task_of(action_id)) and t.processes)), \
            f"the ECS agent never started an engine for {action_id}"
        return agent.kill(action_id)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM every process; SIGKILL what is still running after ``grace`` seconds (a kombu consumer on
        SQS finishes its long poll first, up to 10 s, and nothing after a test needs that)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.close()


Running = RunningDart | Production


@contextmanager
def running(wiring: str, home: Path, *, env: dict[str, str] | None = None, inbox: bool = False,
            schedulers: int = 1, start_schedulers: bool = True,
            server_url: str | None = None) -> Iterator[Running]:
    """A dart on ``wiring`` with its home in ``home``, torn down (databases dropped, servers stopped) after.

    ``env``: extra settings for every dart process (``DART_POLL_INTERVAL`` defaults to 0.2 s). ``inbox``: on
    an embedded wiring, give `dart up` an SQS broker, whose inbox it then consumes (production always has
    one).
    ``schedulers``: scheduler processes on production; ``start_schedulers=False`` leaves them for the test to
    start (``Production.start_schedulers``). ``server_url``: the PostgreSQL server (default:
    $DART_TEST_DATABASE_URL). Raises ``Unavailable`` when the wiring needs what this machine lacks."""
    settings = {"DART_POLL_INTERVAL": "0.2", **(env or {})}
    with ExitStack() as stack:
        database_url = None
        if wiring != EMBEDDED_SQLITE:
            server = server_url or pg.server_url_from_env()
            if server is None:
                raise Unavailable(pg.SKIP_REASON)
            database_url = stack.enter_context(pg.temporary_database(server))
        if wiring in EMBEDDED:
            endpoint = prefix = None
            if inbox:
                endpoint, prefix = stack.enter_context(moto_server()), f"t{uuid.uuid4().hex[:8]}"
                settings.update(AWS_ENV, DART_BROKER_URL=sqs_broker_url(endpoint), DART_QUEUE_PREFIX=prefix,
                                DART_SQS_VISIBILITY_TIMEOUT=SQS_VISIBILITY_TIMEOUT)
            dart = RunningDart(home, database_url, **settings)
            stack.callback(dart.stop)
            if inbox:  # `dart up` runs the inbox itself when DART_BROKER_URL is set
                assert endpoint is not None and prefix is not None
                dart.inbox = InboxQueue(endpoint, prefix)
            yield dart
            return
        if wiring not in (PRODUCTION, PRODUCTION_AMQP):
            raise ValueError(f"unknown wiring {wiring!r}")
        assert database_url is not None
        endpoint = stack.enter_context(moto_server())
        agent = EcsAgent(endpoint, CLUSTER, log_dir=home).start()
        stack.callback(agent.stop)
        if wiring == PRODUCTION_AMQP:
            if not rabbit_up():
                raise Unavailable("RabbitMQ is not running on 127.0.0.1:5672 (.ci/run starts it)")
            broker = AMQP_URL
        else:
            broker = sqs_broker_url(endpoint)
        production = Production(home, database_url, broker, endpoint, agent, settings, schedulers=schedulers,
                                start_schedulers=start_schedulers)
        stack.callback(production.stop)
        yield production
        assert agent.errors == [], agent.errors
