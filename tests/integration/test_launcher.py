"""The launcher on SQLite and PostgreSQL: slot-taking keeps datastore concurrency exact under concurrent
launchers (threads, each on its own connections, like replicas), and the ECS launcher against a moto server
on loopback: what run_task is given, RESOURCE failures back to QUEUED, an engine without a task definition,
and the orphan check in batches of 50 that never fails an action whose engine checked in meanwhile.
No engine runs here and nothing waits on the wall clock: the tests call the launchers' steps directly."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.harness.ecs_agent import ecs_client, set_manual_transitions
from bench.harness.moto import AWS_ENV
from engines.no_op.definition import NO_OP_ENGINE
from events.streams.action import (
    ActionCheckedIn,
    ActionCheckedOut,
    ActionLaunched,
    ActionPending,
    ActionQueued,
)
from events.types import Metadata, NewEvent, StreamAppend
from services.adapters.ecs_launcher import ORPHAN_MESSAGE, EcsLauncher
from services.adapters.local_engines import LocalLauncher
from services.commands.actions import complete_action
from services.commands.auth import authenticate
from services.commands.context import Orchestration
from services.commands.launcher import BUSY, Launcher
from services.domain.errors import NotAuthenticated
from tests.support.world import ADMIN, NO_OP, SUCCEEDS
from tests.support.world import World as BaseWorld

CLUSTER = "dart-test"
META = Metadata(actor="test")
API_URL = "http://dart.invalid/api/1"


@pytest.fixture(scope="module")
def endpoint(moto_endpoint: str) -> str:
    """The module's moto server, with the cluster."""
    set_manual_transitions(moto_endpoint)  # tasks change state only when a test says so
    ecs_client(moto_endpoint).create_cluster(clusterName=CLUSTER)
    return moto_endpoint


@dataclass(kw_only=True)
class World(BaseWorld):
    """The test world with ECS on the module's moto server (``replica()`` is another launcher process)."""

    endpoint: str = ""

    def datastore(self, name: str | None = None, state: str = "ACTIVE", engine: str = NO_OP,
                  concurrency: int = 1, **data: Any) -> str:
        """A datastore whose concurrency (the slots these tests count) is always set, 1 unless told."""
        return super().datastore(name, state, engine, concurrency=concurrency, **data)

    def queued_actions(self, datastore_id: str, count: int) -> list[str]:
        """``count`` ad-hoc actions, all QUEUED at once (as instances of several workflows could be)."""
        ids = self.actions(("datastore", datastore_id),
                           [{"name": f"a{i}", "action_type_name": SUCCEEDS} for i in range(count)])
        for i, action_id in enumerate(ids):
            queued_time = f"2024-01-01T00:00:{i:02d}+00:00"
            self.append(action_id, ActionQueued({"state": "QUEUED", "queued_time": queued_time}))
        return ids

    def append(self, action_id: str, event: Any) -> None:
        row = self.orch.reader.row("action", action_id)
        self.container.store.append(StreamAppend(f"action-{action_id}", row.version, [NewEvent(event, META)]))

    def state(self, action_id: str) -> str:
        return str(self.orch.reader.row("action", action_id).data["state"])

    def action(self, action_id: str) -> dict[str, Any]:
        return dict(self.orch.reader.row("action", action_id).data)


@pytest.fixture
def world(db_url: str, make_world: Callable[..., World], endpoint: str,
          monkeypatch: pytest.MonkeyPatch) -> World:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    world = make_world(db_url, World, {"DART_ECS_CLUSTER": CLUSTER, "DART_AWS_ENDPOINT_URL": endpoint},
                       engine=False)
    world.endpoint = endpoint
    assert world.engine()["data"]["ecs_task_definition_arn"]  # registered on moto
    return world


# ------------------------------------------------------------------------------------------ slot-taking
class RecordingLauncher(Launcher):
    """The shared slot-taking with a launch that only records what it was asked to start."""

    def __init__(self, orch: Orchestration, launched: list[str], lock: threading.Lock) -> None:
        super().__init__(orch, API_URL, token_factory=lambda action_id, engine: "k:s")
        self.launched = launched
        self.lock = lock

    def launch(self, action: dict[str, Any], datastore: dict[str, Any]) -> None:
        assert action["state"] == "PENDING"
        with self.lock:
            self.launched.append(action["id"])


def _busy_high_water(world: World, action_ids: set[str]) -> int:
    """The most actions of the set ever PENDING/RUNNING/FINISHING at once, replaying the log in order."""
    states: dict[str, str] = {}
    high = 0
    for event in world.container.store.iter_all():
        if event.category == "action" and event.entity_id in action_ids:
            changes = event.data.get("changes") or {}
            if "state" in changes:
                states[event.entity_id] = changes["state"]
            high = max(high, sum(s in BUSY for s in states.values()))
    return high


def test_concurrent_launchers_never_exceed_the_datastore_concurrency(world: World) -> None:
    datastore_id = world.datastore(concurrency=2)
    actions = world.queued_actions(datastore_id, 8)
    launched: list[str] = []
    lock = threading.Lock()
    launchers = [RecordingLauncher(world.replica(), launched, lock) for _ in range(4)]

    def all_at_once() -> None:
        barrier = threading.Barrier(len(launchers))
        errors: list[BaseException] = []

        def run(launcher: RecordingLauncher) -> None:
            try:
                barrier.wait(10)
                launcher.launch_ready(datastore_id)
            except BaseException as exc:  # noqa: BLE001 - surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(launcher,)) for launcher in launchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []

    all_at_once()
    assert len(launched) == 2 and len(set(launched)) == 2
    assert sorted(world.state(a) for a in actions) == ["PENDING"] * 2 + ["QUEUED"] * 6
    assert set(launched) == set(actions[:2])  # the oldest queued first

    # Each round one running action completes and the four launchers race for the freed slot.
    while len(launched) < len(actions):
        pending = [a for a in actions if world.state(a) == "PENDING"]
        assert len(pending) == 2
        assert complete_action(world.orch, pending[0], "COMPLETED", None, None)
        before = len(launched)
        all_at_once()
        assert len(launched) == before + 1
        assert sum(world.state(a) in BUSY for a in actions) == 2
    assert sorted(launched) == sorted(actions)  # every action launched, none twice
    assert _busy_high_water(world, set(actions)) == 2


def test_slots_are_taken_only_on_an_active_datastore_and_up_to_its_concurrency(world: World) -> None:
    launched: list[str] = []
    launcher = RecordingLauncher(world.orch, launched, threading.Lock())
    datastore_id = world.datastore(concurrency=3)
    actions = world.queued_actions(datastore_id, 2)
    world.service.update("datastore", datastore_id, lambda d: {**d, "state": "INACTIVE"}, ADMIN)
    assert launcher.launch_ready(datastore_id) == []
    assert [world.state(a) for a in actions] == ["QUEUED", "QUEUED"]
    world.service.update("datastore", datastore_id, lambda d: {**d, "state": "ACTIVE"}, ADMIN)
    assert launcher.launch_ready(datastore_id) == actions  # room for 3: both, oldest first
    assert launcher.launch_ready(datastore_id) == []
    assert launched == actions


# ------------------------------------------------------------------------------------------ ECS launcher
class RecordingClient:
    """The moto ECS client, recording run_task and describe_tasks calls; the first ``resource_failures``
    run_task calls answer as ECS does when no instance has room."""

    def __init__(self, client: Any, resource_failures: int = 0) -> None:
        self.client = client
        self.resource_failures = resource_failures
        self.run_calls: list[dict[str, Any]] = []
        self.describe_batches: list[int] = []
        self.before_describe_returns: Any = None

    def run_task(self, **kwargs: Any) -> dict[str, Any]:
        self.run_calls.append(kwargs)
        if self.resource_failures:
            self.resource_failures -= 1
            return {"tasks": [], "failures": [{"reason": "RESOURCE:MEMORY"}]}
        return self.client.run_task(**kwargs)

    def describe_tasks(self, **kwargs: Any) -> dict[str, Any]:
        self.describe_batches.append(len(kwargs["tasks"]))
        response = self.client.describe_tasks(**kwargs)
        if self.before_describe_returns is not None:
            self.before_describe_returns()
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ecs_launcher(world: World, client: RecordingClient, ticks: Ticks | None = None) -> EcsLauncher:
    return EcsLauncher(world.orch, API_URL, CLUSTER, client=client, resource_retry_after=30.0,
                       token_factory=lambda action_id, engine: f"key-{action_id}:secret",
                       monotonic=ticks or Ticks())


def tasks_for(world: World, action_id: str) -> list[str]:
    ecs = ecs_client(world.endpoint)
    return [arn for status in ("RUNNING", "STOPPED")
            for arn in ecs.list_tasks(cluster=CLUSTER, startedBy=action_id, desiredStatus=status)["taskArns"]]


def test_run_task_gets_started_by_client_token_and_the_engine_environment(world: World) -> None:
    datastore_id = world.datastore()
    [action_id] = world.queued_actions(datastore_id, 1)
    client = RecordingClient(ecs_client(world.endpoint))
    launcher = ecs_launcher(world, client)
    assert launcher.launch_ready(datastore_id) == [action_id]
    [call] = client.run_calls
    pending_version = world.orch.reader.row("action", action_id).version - 1  # then ActionLaunched
    assert call["startedBy"] == action_id and call["count"] == 1 and call["launchType"] == "FARGATE"
    assert call["clientToken"] == f"dart-{action_id}-{pending_version}"
    assert call["taskDefinition"] == world.orch.reader.find_by("engine", name="no_op_engine")[0]["data"][
        "ecs_task_definition_arn"]
    [override] = call["overrides"]["containerOverrides"]
    assert override["name"] == "dart-no_op_engine"
    assert {e["name"]: e["value"] for e in override["environment"]} == {
        "DART_ACTION_ID": action_id, "DART_ACTION_USER_ID": ADMIN.user_id, "DART_API_URL": API_URL,
        "DART_API_TOKEN": f"key-{action_id}:secret"}
    action = world.action(action_id)
    assert action["state"] == "PENDING" and tasks_for(world, action_id) == [action["ecs_task_arn"]]
    # A repeat of the launch finds the task; run_task is not called again.
    assert launcher.launch({**action, "id": action_id}, {}) == action["ecs_task_arn"]
    assert len(client.run_calls) == 1 and tasks_for(world, action_id) == [action["ecs_task_arn"]]


def test_resource_failures_put_the_action_back_in_the_queue_and_hold_the_datastore(world: World) -> None:
    datastore_id = world.datastore()
    [action_id] = world.queued_actions(datastore_id, 1)
    client = RecordingClient(ecs_client(world.endpoint), resource_failures=1)
    ticks = Ticks()
    launcher = ecs_launcher(world, client, ticks)
    assert launcher.launch_ready(datastore_id) == [action_id]
    assert world.state(action_id) == "QUEUED" and world.action(action_id)["ecs_task_arn"] is None
    assert tasks_for(world, action_id) == []

    # The ActionRequeued comes back to the launcher: held, nothing is tried yet.
    stream = world.container.store.read_stream(f"action-{action_id}")
    requeued = [e for e in stream if e.type == "ActionRequeued"]
    launcher.handle(requeued)
    assert launcher.retry_held() == []
    assert len(client.run_calls) == 1 and world.state(action_id) == "QUEUED"

    ticks.now += 30.0  # the hold runs out
    assert launcher.retry_held() == [action_id]
    assert len(client.run_calls) == 2
    first, second = (c["clientToken"] for c in client.run_calls)
    assert first != second  # a new launch intent, a new token
    action = world.action(action_id)
    assert action["state"] == "PENDING" and tasks_for(world, action_id) == [action["ecs_task_arn"]]


def test_the_launch_token_is_scoped_to_the_action_and_revoked_when_no_task_started(world: World) -> None:
    datastore_id = world.datastore()
    [action_id] = world.queued_actions(datastore_id, 1)
    client = RecordingClient(ecs_client(world.endpoint), resource_failures=1)
    ticks = Ticks()
    launcher = EcsLauncher(world.orch, API_URL, CLUSTER, client=client, monotonic=ticks)  # real API keys

    def token(call: dict[str, Any]) -> str:
        [override] = call["overrides"]["containerOverrides"]
        return next(e["value"] for e in override["environment"] if e["name"] == "DART_API_TOKEN")

    launcher.launch_ready(datastore_id)
    ticks.now += launcher.resource_retry_after
    assert launcher.retry_held() == [action_id]
    unused, used = (token(c) for c in client.run_calls)
    with pytest.raises(NotAuthenticated):  # its run_task started nothing: revoked
        authenticate(world.container.store, f"Bearer {unused}")
    principal = authenticate(world.container.store, f"Bearer {used}")
    assert principal.scope == f"action:{action_id}" and principal.user_id == "engine@no_op_engine"


def test_an_engine_without_a_task_definition_fails_its_action_clearly(world: World) -> None:
    local_only = copy.deepcopy(NO_OP_ENGINE)
    local_only["name"] = "local_only_engine"
    local_only["ecs_task_definition"] = None
    world.engine(local_only)
    datastore_id = world.datastore(engine="local_only_engine")
    [action_id] = world.queued_actions(datastore_id, 1)
    client = RecordingClient(ecs_client(world.endpoint))
    assert ecs_launcher(world, client).launch_ready(datastore_id) == [action_id]
    action = world.action(action_id)
    assert action["state"] == "FAILED"
    assert "'local_only_engine' has no ECS task definition" in action["error_message"]
    assert client.run_calls == [] and tasks_for(world, action_id) == []
    datastore = world.orch.reader.row("datastore", datastore_id).data
    assert datastore["state"] == "INACTIVE"  # the ad-hoc action's on_failure: DEACTIVATE


def test_orphan_check_describes_in_batches_of_50_and_fails_only_lost_tasks(world: World) -> None:
    ecs = ecs_client(world.endpoint)
    [engine] = world.orch.reader.find_by("engine", name="no_op_engine")
    definition = engine["data"]["ecs_task_definition_arn"]
    datastore_id = world.datastore(concurrency=10)
    actions = world.queued_actions(datastore_id, 56)
    arns: dict[str, str] = {}
    for i, action_id in enumerate(actions):
        [task] = ecs.run_task(cluster=CLUSTER, taskDefinition=definition, count=1, launchType="FARGATE",
                              startedBy=action_id)["tasks"]
        arns[action_id] = task["taskArn"]
        world.append(action_id, ActionPending({"state": "PENDING"}))
        world.append(action_id, ActionLaunched({"ecs_task_arn": task["taskArn"]}))
        if i % 2:
            world.append(action_id, ActionCheckedOut(datetime.now(UTC).isoformat()))
    lost = [actions[1], actions[2], actions[54]]  # RUNNING, PENDING, and one in the second batch
    checks_in = actions[55]  # its engine checks in while the check is under way, then its task stops
    for action_id in lost + [checks_in]:
        ecs.stop_task(cluster=CLUSTER, task=arns[action_id], reason="Essential container in task exited")
    client = RecordingClient(ecs)
    client.before_describe_returns = lambda: (
        world.state(checks_in) == "RUNNING" and world.append(checks_in, ActionCheckedIn("COMPLETED")))
    launcher = ecs_launcher(world, client)

    assert sorted(launcher.check_orphans()) == sorted(lost)
    assert sorted(client.describe_batches) == [6, 50]
    for action_id in lost:
        action = world.action(action_id)
        assert action["state"] == "FAILED" and action["error_message"].startswith(ORPHAN_MESSAGE)
    assert world.state(checks_in) == "FINISHING"  # checked in: not failed
    others = [a for a in actions if a not in lost and a != checks_in]
    assert {world.state(a) for a in others} == {"PENDING", "RUNNING"}
    client.describe_batches.clear()
    assert launcher.check_orphans() == []  # nothing more to fail
    assert sum(client.describe_batches) == len(others)


def test_stale_pending_with_a_recorded_task_is_failed_and_its_task_stopped(world: World) -> None:
    datastore_id = world.datastore()
    [action_id] = world.queued_actions(datastore_id, 1)
    client = RecordingClient(ecs_client(world.endpoint))
    launcher = ecs_launcher(world, client)
    launcher.launch_ready(datastore_id)
    arn = world.action(action_id)["ecs_task_arn"]
    updated = world.orch.reader.row("action", action_id).updated
    assert launcher.check_stale(updated + launcher.stale_after) == {"requeued": [], "failed": []}  # not yet
    result = launcher.check_stale(updated + launcher.stale_after + launcher.stale_after / 100)
    assert result == {"requeued": [], "failed": [action_id]}
    assert world.state(action_id) == "FAILED"
    task = ecs_client(world.endpoint).describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]
    assert task["desiredStatus"] == "STOPPED"
    assert tasks_for(world, action_id) == [arn]


def test_stale_check_requeues_a_pending_action_without_a_task(world: World) -> None:
    datastore_id = world.datastore()
    [action_id] = world.queued_actions(datastore_id, 1)
    world.append(action_id, ActionPending({"state": "PENDING"}))  # the intent, then the launcher died
    row = world.orch.reader.row("action", action_id)
    launcher = ecs_launcher(world, RecordingClient(ecs_client(world.endpoint)))
    assert launcher.check_stale(row.updated + launcher.stale_after / 2) == {"requeued": [], "failed": []}
    later = row.updated + launcher.stale_after * 2
    assert launcher.check_stale(later) == {"requeued": [action_id], "failed": []}
    assert world.state(action_id) == "QUEUED"
    stream = world.container.store.read_stream(f"action-{action_id}")
    assert [e.type for e in stream][-2:] == ["ActionPending", "ActionRequeued"]


def test_a_running_action_whose_task_was_never_recorded_is_found_by_started_by_and_watched(world: World) -> None:
    """A launcher killed between run_task and recording the task: the engine checks out anyway (RUNNING, no
    ecs_task_arn). After ``stale_after`` the orphan check finds the task by startedBy, records it, and fails
    the action once the task stops; a RUNNING action with no task at all fails at once."""
    ecs = ecs_client(world.endpoint)
    [engine] = world.orch.reader.find_by("engine", name="no_op_engine")
    datastore_id = world.datastore(concurrency=2)
    found, never = world.queued_actions(datastore_id, 2)
    [task] = ecs.run_task(cluster=CLUSTER, taskDefinition=engine["data"]["ecs_task_definition_arn"], count=1,
                          launchType="FARGATE", startedBy=found)["tasks"]
    for action_id in (found, never):
        world.append(action_id, ActionPending({"state": "PENDING"}))
        world.append(action_id, ActionCheckedOut(datetime.now(UTC).isoformat()))
    launcher = ecs_launcher(world, RecordingClient(ecs))
    updated = world.orch.reader.row("action", found).updated
    assert launcher.check_orphans(updated + launcher.stale_after / 2) == []  # too soon: nobody is looked up
    assert world.action(found)["ecs_task_arn"] is None and world.state(never) == "RUNNING"

    later = updated + launcher.stale_after * 2
    assert launcher.check_orphans(later) == []  # the task runs: recorded, not failed
    assert world.action(found)["ecs_task_arn"] == task["taskArn"] and world.state(found) == "RUNNING"
    failed = world.action(never)
    assert failed["state"] == "FAILED" and "no ECS task was recorded" in failed["error_message"]

    ecs.stop_task(cluster=CLUSTER, task=task["taskArn"], reason="Essential container in task exited")
    assert launcher.check_orphans(later) == [found]
    assert world.action(found)["error_message"].startswith(ORPHAN_MESSAGE)


# ------------------------------------------------------------------------------ local engines, adopted
def _engine_process(action_id: str) -> subprocess.Popen[bytes]:
    """A stand-in for an engine a previous `dart up` started: a live process naming the action."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                            env={**os.environ, "DART_ACTION_ID": action_id}, stdin=subprocess.DEVNULL)


def _pending_then(world: World, action_id: str, task: str | None, running: bool = True) -> None:
    world.append(action_id, ActionPending({"state": "PENDING"}))
    if task is not None:
        world.append(action_id, ActionLaunched({"ecs_task_arn": task}))
    if running:
        world.append(action_id, ActionCheckedOut(datetime.now(UTC).isoformat()))


def test_a_restarted_local_launcher_adopts_the_engines_it_did_not_start_and_fails_the_lost_ones(
        world: World) -> None:
    datastore_id = world.datastore(concurrency=5)
    by_pid, legacy, gone, unrecorded, checked_in = world.queued_actions(datastore_id, 5)
    engines = {a: _engine_process(a) for a in (by_pid, legacy, unrecorded, checked_in)}
    dead = _engine_process(gone)
    dead.kill()
    dead.wait()
    try:
        _pending_then(world, by_pid, f"local:{engines[by_pid].pid}")
        _pending_then(world, legacy, "")  # recorded before pids were: found by its environment
        _pending_then(world, gone, f"local:{dead.pid}")
        _pending_then(world, unrecorded, None)  # started, then the launcher died before recording it
        _pending_then(world, checked_in, f"local:{engines[checked_in].pid}")
        launcher = LocalLauncher(world.orch, API_URL, token_factory=lambda a, e: "k:s")

        launcher.check()
        assert sorted(launcher.adopted) == sorted([by_pid, legacy, unrecorded, checked_in])
        assert launcher.adopted[legacy] == engines[legacy].pid
        assert world.action(unrecorded)["ecs_task_arn"] is None  # RUNNING: the engine is its record
        failed = world.action(gone)
        assert failed["state"] == "FAILED" and "engine process is gone" in failed["error_message"]
        assert {world.state(a) for a in engines} == {"RUNNING"}

        world.append(checked_in, ActionCheckedIn("COMPLETED"))  # checks in, then exits: not failed
        for action_id in (by_pid, legacy, checked_in):
            engines[action_id].kill()
            engines[action_id].wait()
        launcher.check()
        for action_id in (by_pid, legacy):
            lost = world.action(action_id)
            assert lost["state"] == "FAILED" and "exited without checking in" in lost["error_message"]
        assert world.state(checked_in) == "FINISHING"
        assert world.state(unrecorded) == "RUNNING" and list(launcher.adopted) == [unrecorded]
    finally:
        for process in engines.values():
            process.kill()
            process.wait()
    launcher.check()
    assert world.state(unrecorded) == "FAILED" and launcher.adopted == {}


def test_a_stale_pending_local_action_whose_engine_runs_is_recorded_not_requeued(world: World) -> None:
    datastore_id = world.datastore(concurrency=2)
    running, never = world.queued_actions(datastore_id, 2)
    engine = _engine_process(running)
    try:
        _pending_then(world, running, None, running=False)
        _pending_then(world, never, None, running=False)
        launcher = LocalLauncher(world.orch, API_URL, token_factory=lambda a, e: "k:s")
        later = world.orch.reader.row("action", never).updated + launcher.stale_after * 2
        assert launcher.requeue_stale(later) == 1
        assert world.state(never) == "QUEUED"
        assert world.state(running) == "PENDING"
        assert world.action(running)["ecs_task_arn"] == f"local:{engine.pid}"
        assert launcher.adopted == {running: engine.pid}
    finally:
        engine.kill()
        engine.wait()


@pytest.mark.parametrize("commands", [{"no_op_engine": ["/nonexistent/dart-engine"]}, {"other_engine": ["true"]}],
                         ids=["cannot-start", "no-command"])
def test_a_local_engine_that_cannot_start_fails_its_action_and_its_token_is_revoked(
        world: World, commands: dict[str, list[str]]) -> None:
    datastore_id = world.datastore()
    [action_id] = world.queued_actions(datastore_id, 1)
    launcher = LocalLauncher(world.orch, API_URL, commands=commands)  # real API keys
    assert launcher.launch_ready(datastore_id) == [action_id]
    failed = world.action(action_id)
    assert failed["state"] == "FAILED"
    assert ("could not start the engine" in failed["error_message"]
            or "no local command for engine" in failed["error_message"])
    [minted] = [e for e in world.container.store.read_all(0, 10000, types=["ApiKeyCreated"])
                if e.data["data"]["scope"] == f"action:{action_id}"]
    assert [e.type for e in world.container.store.read_stream(minted.stream_id)] == ["ApiKeyCreated", "ApiKeyRevoked"]
