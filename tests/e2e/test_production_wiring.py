"""The production wiring end to end: PostgreSQL, a broker (RabbitMQ over AMQP, and the SQS wire protocol on a
moto server), and every process on its own: `dart api` (gunicorn), `dart relay`, `dart worker orchestrator`,
`dart worker launcher`, `dart worker scheduler`. Workflows must run exactly as in the embedded mode."""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE
from tests.e2e.api_client import Api
from tests.e2e.conftest import KEY, SECRET
from tests.e2e.test_workflow_runs import (
    FAILS,
    SUCCEEDS,
    datastore,
    finished,
    instance_actions,
    trigger,
    workflow,
)
from tests.support import pg
from tests.support.moto import AWS_ENV, moto_server

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
        return True
    except OSError:
        return False


class Stack:
    def __init__(self, home: Path, database_url: str, broker_url: str, extra: dict[str, str]) -> None:
        self.home = home
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
        self.env.update(DART_HOME=str(home), DART_DATABASE_URL=database_url, DART_BROKER_URL=broker_url,
                        DART_QUEUE_PREFIX=f"t{uuid.uuid4().hex[:8]}", DART_BOOTSTRAP_API_KEY=f"{KEY}:{SECRET}",
                        DART_API_URL=f"http://127.0.0.1:{self.port}/api/1", DART_POLL_INTERVAL="0.2",
                        DART_LOG_FORMAT="json", **extra)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.start("api", "api", "--port", str(self.port), "--workers", "1", "--threads", "8")
        self._wait_healthy()
        for name, args in self.roles().items():
            self.start(name, *args)

    @staticmethod
    def roles() -> dict[str, tuple[str, ...]]:
        return {"relay": ("relay",), "orchestrator": ("worker", "orchestrator"),
                "launcher": ("worker", "launcher"), "scheduler": ("worker", "scheduler")}

    def start(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "services.cli", *args], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("dart api did not come up: " + (self.home / "api.log").read_text()[-3000:])

    def api(self) -> Api:
        return Api(f"http://127.0.0.1:{self.port}/api/1", KEY, SECRET)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module", params=["amqp", "sqs"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    server = pg.server_url_from_env()
    if server is None:
        pytest.skip(pg.SKIP_REASON)
    with ExitStack() as stack_:
        database_url = stack_.enter_context(pg.temporary_database(server))
        if request.param == "amqp":
            if not _rabbit_up():
                pytest.fail("RabbitMQ is not running on 127.0.0.1:5672 (.ci/run starts it)")
            broker, extra = "amqp://guest:guest@127.0.0.1:5672//", {}
        else:
            endpoint = stack_.enter_context(moto_server())
            broker = "sqs://testing:testing@" + endpoint.removeprefix("http://")
            extra = {**AWS_ENV, "DART_SQS_VISIBILITY_TIMEOUT": "4"}
        running = Stack(tmp_path_factory.mktemp(f"prod-{request.param}"), database_url, broker, extra)
        stack_.callback(running.stop)
        yield running


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    client = stack.api()
    client.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    return client


def test_chained_workflows_complete_through_the_broker(api: Api) -> None:
    wf0 = workflow(api, datastore(api), [SUCCEEDS, SUCCEEDS])
    wf1 = workflow(api, datastore(api), [SUCCEEDS])
    trigger(api, "workflow_completion", {"completed_workflow_id": wf0["id"]}, [wf1["id"]])
    api.post(f"/workflow/{wf0['id']}/do-manual-trigger", None)
    assert [i["data"]["state"] for i in finished(api, wf1)] == ["COMPLETED"]
    [first] = finished(api, wf0)
    assert [a["data"]["state"] for a in instance_actions(api, first)] == ["COMPLETED", "COMPLETED"]


def test_failure_skips_the_rest_and_deactivates(api: Api) -> None:
    flow = workflow(api, datastore(api, state="ACTIVE"), [FAILS, SUCCEEDS])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = finished(api, flow)
    assert [a["data"]["state"] for a in instance_actions(api, instance)] == ["FAILED", "SKIPPED"]


def test_killed_workers_lose_nothing_and_launch_nothing_twice(stack: Stack, api: Api) -> None:
    """SIGKILL each worker while a chain of workflows runs, then restart it: every run completes, and no
    action is launched twice."""
    flows = [workflow(api, datastore(api), [SUCCEEDS, SUCCEEDS]) for _ in range(4)]
    for upstream, downstream in zip(flows, flows[1:]):
        trigger(api, "workflow_completion", {"completed_workflow_id": upstream["id"]}, [downstream["id"]])
    api.post(f"/workflow/{flows[0]['id']}/do-manual-trigger", None)
    kills = 0
    for name in ["relay", "orchestrator", "launcher", "relay", "orchestrator", "launcher", "relay", "orchestrator",
                 "launcher", "relay", "orchestrator", "launcher"]:
        time.sleep(0.3)
        stack.kill(name)
        stack.start(name, *Stack.roles()[name])
        kills += 1
    assert kills >= 10
    for flow in flows:
        [instance] = finished(api, flow, timeout=240)
        assert instance["data"]["state"] == "COMPLETED"
        for action in instance_actions(api, instance):
            history = api.ok("GET", f"/action/{action['id']}/history")
            assert [e["type"] for e in history].count("ActionLaunched") <= 1
            assert [e["type"] for e in history].count("ActionPending") == 1
            assert action["data"]["state"] == "COMPLETED"
