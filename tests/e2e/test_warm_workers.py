"""Warm engine workers (issue 16) on the production wiring with RabbitMQ: the launcher sends no_op actions to
`dart engine-worker --engine no_op_engine` (two replicas) instead of ECS, and exactly one engine runs per
action when workers are SIGKILLed mid-action (a replica adopts the engine, or fails its action as a lost
engine when the engine died too), when a worker died before its engine checked out (started again, once),
and across replicas under load. Engines' check-outs are counted from the log (ActionCheckedOut)."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.harness.api_client import Api
from events.database import open_store
from events.streams import default_registry
from events.streams.action import ActionLaunched
from events.types import NewEvent, StreamAppend
from projections.catalog import all_projections
from services.adapters.local_engines import engine_alive, engine_pids
from services.commands.launcher import META
from tests.e2e.flows import (
    SUCCEEDS,
    datastore,
    finished,
    history_types,
    instance_actions,
    instances,
    register_no_op,
    wait_for,
    workflow,
)
from tests.e2e.stacks import PRODUCTION, PRODUCTION_AMQP, Production, running

pytestmark = pytest.mark.postgres
WORKERS = ("engine-worker-1", "engine-worker-2")


def start_worker(stack: Production, name: str) -> None:
    stack.roles[name] = ("engine-worker", "--engine", "no_op_engine")
    stack.start(name)
    stack.wait_ready(name)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    env = {"DART_WARM_WORKER_ENGINES": "no_op_engine", "DART_STALE_PENDING_SECONDS": "60"}
    with running(PRODUCTION_AMQP, tmp_path_factory.mktemp("warm-workers"), env=env) as production:
        assert isinstance(production, Production)
        for name in WORKERS:
            start_worker(production, name)
        yield production
        for pid in _left_engines:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


_left_engines: list[int] = []


@pytest.fixture(scope="module")
def api(stack: Production) -> Api:
    client = stack.api()
    register_no_op(client)
    return client


def _start(api: Api, flow: dict[str, Any]) -> str:
    return str(api.request("POST", f"/workflow/{flow['id']}/do-manual-trigger")[1]["workflow_instance_id"])


def _running(api: Api, instance_id: str) -> dict[str, Any]:
    return dict(wait_for(lambda: next((a for a in instance_actions(api, {"id": instance_id})
                                       if a["data"]["state"] == "RUNNING" and a["data"].get("ecs_task_arn")),
                                      None), what="a RUNNING action with its engine recorded"))


def _task(action: dict[str, Any]) -> tuple[str, int, int]:
    """(host, worker pid, engine pid) of a warm worker's engine, as its task records them."""
    host, worker, pid = str(action["data"]["ecs_task_arn"]).removeprefix("warm:").rsplit(":", 2)
    return host, int(worker), int(pid)


def _worker_named(stack: Production, pid: int) -> str:
    return next(name for name in WORKERS if stack.procs[name].pid == pid)


def _checkouts(api: Api, action_id: str) -> int:
    return history_types(api, "action", action_id).count("ActionCheckedOut")


def _restart_dead(stack: Production) -> None:
    for name in WORKERS:
        if not stack.alive(name):
            start_worker(stack, name)


def test_a_workflow_runs_on_warm_workers_not_ecs(stack: Production, api: Api) -> None:
    flow = workflow(api, datastore(api, "ACTIVE", sleep=0), [SUCCEEDS, SUCCEEDS, SUCCEEDS])
    _start(api, flow)
    [run] = finished(api, flow)
    assert run["data"]["state"] == "COMPLETED"
    for action in instance_actions(api, run):
        host, worker, _ = _task(action)
        assert host == socket.gethostname() and worker in {stack.procs[n].pid for n in WORKERS}
        assert _checkouts(api, action["id"]) == 1
        assert stack.agent.task_of(action["id"]) is None  # no ECS task was started for it


def test_cancel_stops_a_warm_worker_s_engine(stack: Production, api: Api) -> None:
    flow = workflow(api, datastore(api, "ACTIVE", sleep=120), [SUCCEEDS])
    instance_id = _start(api, flow)
    action = _running(api, instance_id)
    _, _, pid = _task(action)
    assert api.request("POST", f"/workflow/instance/{instance_id}/cancel")[0] == 200
    wait_for(lambda: not engine_alive(pid, action["id"]), timeout=30, what="the engine stopped")


def test_a_killed_worker_s_running_engine_is_adopted_by_a_replica(stack: Production, api: Api) -> None:
    flow = workflow(api, datastore(api, "ACTIVE", sleep=4), [SUCCEEDS])
    action = _running(api, _start(api, flow))
    _, worker, pid = _task(action)
    stack.kill(_worker_named(stack, worker))  # its unacknowledged message goes to the other replica
    assert engine_alive(pid, action["id"])  # the engine lives on in its own session
    [run] = finished(api, flow)
    assert run["data"]["state"] == "COMPLETED" and _checkouts(api, action["id"]) == 1
    assert any("adopting its engine" in (stack.home / f"{n}.log").read_text() for n in WORKERS)
    _restart_dead(stack)


def test_cancel_stops_an_engine_a_replica_adopted(stack: Production, api: Api) -> None:
    flow = workflow(api, datastore(api, "ACTIVE", sleep=120), [SUCCEEDS])
    instance_id = _start(api, flow)
    action = _running(api, instance_id)
    _, worker, pid = _task(action)
    stack.kill(_worker_named(stack, worker))
    wait_for(lambda: any(f"action {action['id']}: adopting its engine" in (stack.home / f"{n}.log").read_text()
                         for n in WORKERS), what="a replica adopting the engine")
    assert api.request("POST", f"/workflow/instance/{instance_id}/cancel")[0] == 200
    wait_for(lambda: not engine_alive(pid, action["id"]), timeout=30, what="the adopted engine stopped")
    _restart_dead(stack)


def test_a_killed_worker_and_its_engine_fail_the_action_as_a_lost_engine(stack: Production, api: Api) -> None:
    flow = workflow(api, datastore(api, "ACTIVE", sleep=60), [SUCCEEDS])
    action = _running(api, _start(api, flow))
    _, worker, pid = _task(action)
    stack.kill(_worker_named(stack, worker))
    os.kill(pid, signal.SIGKILL)
    [run] = finished(api, flow)
    failed = api.get(f"/action/{action['id']}")["data"]
    assert run["data"]["state"] == "FAILED" and failed["state"] == "FAILED"
    assert "its engine's worker is gone" in failed["error_message"]
    _restart_dead(stack)


def test_an_engine_whose_worker_died_before_it_checked_out_is_started_again_once(stack: Production,
                                                                                  api: Api) -> None:
    for name in WORKERS:  # no worker: the launch message waits in the queue
        stack.kill(name)
    flow = workflow(api, datastore(api, "ACTIVE", sleep=0), [SUCCEEDS])
    instance_id = _start(api, flow)
    action = wait_for(lambda: next((a for a in instance_actions(api, {"id": instance_id})
                                    if a["data"]["state"] == "PENDING"), None), what="the PENDING action")
    # What a worker SIGKILLed between recording its engine and the engine's check-out leaves behind.
    store = open_store(stack.database_url, default_registry(), migrate=False)
    for projection in all_projections():  # the read models follow the append, as in every dart process
        if projection.mode == "inline":
            store.add_inline_projection(projection)
    row = store.read_stream(f"action-{action['id']}")
    store.append(StreamAppend(f"action-{action['id']}", row[-1].stream_version, [NewEvent(
        ActionLaunched({"ecs_task_arn": f"warm:{socket.gethostname()}:999999:999999"}), META)]))
    store.close()
    _restart_dead(stack)
    [run] = finished(api, flow)
    assert run["data"]["state"] == "COMPLETED" and _checkouts(api, action["id"]) == 1
    assert history_types(api, "action", action["id"]).count("ActionLaunched") == 2  # the dead one, the new one


def test_replicas_under_kills_run_each_action_exactly_once(stack: Production, api: Api) -> None:
    flows = [workflow(api, datastore(api, "ACTIVE", sleep=1), [SUCCEEDS, SUCCEEDS]) for _ in range(6)]
    for flow in flows:
        _start(api, flow)
    action = _running(api, instances(api, flows[0])[0]["id"])
    stack.kill(_worker_named(stack, _task(action)[1]))
    for flow in flows:
        [run] = finished(api, flow, timeout=120)
        assert run["data"]["state"] == "COMPLETED", [(a["id"], a["data"]["state"], a["data"].get("error_message"),
                                                      a["data"].get("ecs_task_arn")) for a in instance_actions(api, run)]
        for done in instance_actions(api, run):
            assert _checkouts(api, done["id"]) == 1
            _left_engines.extend(engine_pids(done["id"]))
    _restart_dead(stack)


def test_on_sqs_a_long_engine_keeps_its_message_from_the_other_replica(tmp_path: Path) -> None:
    """SQS gives a message to another consumer once its visibility timeout (4 s here) has passed: the worker
    running its engine keeps extending it, so the replica never takes the action over."""
    env = {"DART_WARM_WORKER_ENGINES": "no_op_engine"}
    with running(PRODUCTION, tmp_path, env=env) as production:
        assert isinstance(production, Production)
        for name in WORKERS:
            start_worker(production, name)
        api = production.api()
        register_no_op(api)
        flow = workflow(api, datastore(api, "ACTIVE", sleep=10), [SUCCEEDS])
        action = _running(api, _start(api, flow))
        [run] = finished(api, flow)
        assert run["data"]["state"] == "COMPLETED" and _checkouts(api, action["id"]) == 1
        logs = "".join((tmp_path / f"{n}.log").read_text() for n in WORKERS)
        assert "adopting its engine" not in logs and logs.count(f"action {action['id']}: ") == 0
