"""Engines launched as ECS tasks: `dart up` with DART_ECS_CLUSTER against a moto server on loopback, and a
test ECS agent (tests/support/ecs_agent.py) that runs each task's engine as a local process and reports its
end through moto. moto ignores ``clientToken``, so idempotency is shown with a redelivered launch that must
find the task an earlier, crashed delivery started (``list_tasks(startedBy=<action id>)``).

With ``DART_ECS_CLUSTER`` set, `dart up`'s workers launch engines with the EcsLauncher, whose periodic
checks (orphans, stale PENDING) run every poll interval.

Stale PENDING is checked by a second EcsLauncher in this process, on the same SQLite file, with an injected
clock; the running dart's own stale timeout is an hour, so it never races these checks. Nothing waits on the
wall clock: every wait is for a condition."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.streams.action import ActionPending
from events.streams.datastore import DatastoreSlotTaken
from events.types import Metadata, NewEvent, StreamAppend
from services.commands.context import Orchestration
from services.adapters.ecs_launcher import EcsLauncher
from services.runtime.settings import load_settings
from services.runtime.composition import Container, build
from bench.harness.api_client import Api
from tests.e2e.flows import datastore, name, register_no_op, workflow
from tests.e2e.flows import wait_for as _wait_for
from tests.e2e.stacks import CLUSTER, RunningDart
from bench.harness.ecs_agent import EcsAgent, ecs_client
from bench.harness.moto import AWS_ENV, moto_server

STALE_SECONDS = 3600.0
SUCCEEDS = "fake_action_that_succeeds"


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    return _wait_for(check, timeout, what, every=0.05)


class Crash(Exception):
    """A launcher dying between run_task and recording the task."""


class CrashingLauncher(EcsLauncher):
    def record_launched(self, action_id: str, arn: str) -> None:
        raise Crash(arn)


@dataclass
class World:
    dart: RunningDart
    api: Api
    agent: EcsAgent
    ecs: Any
    container: Container
    orch: Orchestration
    endpoint: str

    def launcher(self, cls: type[EcsLauncher] = EcsLauncher, now: datetime | None = None) -> EcsLauncher:
        """Another launcher on dart's database and moto (a second replica, or a restarted one)."""
        return cls(self.orch, self.dart.base + "/api/1", CLUSTER, client=self.ecs, stale_after=STALE_SECONDS,
                   clock=(lambda: now) if now else None)

    def tasks_for(self, action_id: str) -> list[str]:
        arns: list[str] = []
        for status in ("RUNNING", "STOPPED"):
            listed = self.ecs.list_tasks(cluster=CLUSTER, startedBy=action_id, desiredStatus=status)
            arns += [a for a in listed["taskArns"] if a not in arns]  # it may stop between the two
        return arns

    def task(self, arn: str) -> dict[str, Any]:
        return self.ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]

    def action(self, action_id: str) -> dict[str, Any]:
        return self.api.get(f"/action/{action_id}")["data"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("ecs-launch")
    with moto_server() as endpoint:
        agent = EcsAgent(endpoint, CLUSTER, log_dir=home).start()
        dart = RunningDart(home, None, DART_ECS_CLUSTER=CLUSTER, DART_AWS_ENDPOINT_URL=endpoint,
                           DART_POLL_INTERVAL="0.2", DART_STALE_PENDING_SECONDS=str(STALE_SECONDS),
                           **AWS_ENV)
        container = build(load_settings(env={"DART_HOME": str(home)}), migrate=False)
        try:
            api = dart.api()
            engine = register_no_op(api)
            assert engine["data"]["ecs_task_definition_arn"].startswith("arn:aws:ecs:")
            yield World(dart, api, agent, ecs_client(endpoint), container, Orchestration(container.store),
                        endpoint)
        finally:
            dart.stop()
            agent.stop()
            container.store.close()
    assert agent.errors == []


def adhoc_action(world: World, store: dict[str, Any], state: str = "QUEUED") -> str:
    [action] = world.api.post(f"/datastore/{store['id']}/action", [
        {"data": {"name": name("a"), "action_type_name": SUCCEEDS, "engine_name": "no_op_engine"}}])
    wait_for(lambda: world.action(action["id"])["state"] == state, what=f"action {state}")
    return str(action["id"])


def give_slot(world: World, datastore_id: str, action_id: str) -> dict[str, Any]:
    """What a launcher's slot-taking appends (the launch intent), for an action of an INACTIVE datastore that
    no running launcher will touch; returns the action as ``launch`` receives it."""
    store = world.orch.reader.row("datastore", datastore_id)
    action = world.orch.reader.row("action", action_id)
    assert action.data["state"] == "QUEUED"
    meta = Metadata(actor="launcher")
    world.container.store.append(
        StreamAppend(f"datastore-{datastore_id}", store.version, [NewEvent(
            DatastoreSlotTaken({"pending": [action_id]}), meta)]),
        StreamAppend(f"action-{action_id}", action.version, [NewEvent(
            ActionPending({"state": "PENDING"}), meta)]),
    )
    row = world.orch.reader.row("action", action_id)
    return {**row.data, "id": action_id, "_version": row.version}


def overrides_env(task: dict[str, Any]) -> dict[str, str]:
    [container] = task["overrides"]["containerOverrides"]
    assert container["name"] == "dart-no_op_engine"
    return {e["name"]: e["value"] for e in container["environment"]}


def test_a_workflow_of_two_actions_runs_each_on_its_own_ecs_task(world: World) -> None:
    api = world.api
    store = datastore(api, "TEMPLATE")
    flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": name("wf"), "state": "ACTIVE"}})
    api.post(f"/workflow/{flow['id']}/action", [
        {"data": {"name": f"a{i}", "action_type_name": SUCCEEDS, "engine_name": "no_op_engine"}}
        for i in range(2)])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = wait_for(lambda: [i for i in api.get(f"/workflow/{flow['id']}/instance")
                                   if i["data"]["state"] in ("COMPLETED", "FAILED")],
                          what="the instance finished")
    assert instance["data"]["state"] == "COMPLETED"
    actions = sorted(api.get("/action", params={"filters": [f"workflow_instance_id = {instance['id']}"]}),
                     key=lambda a: a["data"]["order_idx"])
    assert [a["data"]["state"] for a in actions] == ["COMPLETED", "COMPLETED"]
    arns = [a["data"]["ecs_task_arn"] for a in actions]
    assert all(arn and arn.startswith("arn:aws:ecs:") for arn in arns) and len(set(arns)) == 2
    clone = api.get(f"/datastore/{actions[0]['data']['datastore_id']}")["data"]
    clone_user = clone.get("user_id") or "anonymous"
    for action, arn in zip(actions, arns):
        assert world.tasks_for(action["id"]) == [arn]  # one task each, started for that action
        assert world.agent.wait_for(lambda: world.agent.task_of(action["id"]).stopped)  # the engine exited
        task = world.task(arn)
        assert task["startedBy"] == action["id"] and task["launchType"] == "FARGATE"
        assert task["lastStatus"] == "STOPPED" and "code 0" in task["stoppedReason"]  # the engine exited
        env = overrides_env(task)
        assert env["DART_ACTION_ID"] == action["id"]
        assert env["DART_ACTION_USER_ID"] == clone_user
        assert env["DART_API_URL"] == world.dart.base + "/api/1"
        key, _, secret = env["DART_API_TOKEN"].partition(":")
        assert key and secret and key != "TESTADMINKEY"
        assert world.agent.task_of(action["id"]).exit_codes == [0]
    # Strictly in order: the second task started only after the first action completed.
    assert actions[0]["data"]["end_time"] <= actions[1]["data"]["start_time"]


def test_a_redelivered_launch_finds_the_task_an_earlier_delivery_started(world: World) -> None:
    store = datastore(world.api, "INACTIVE")  # no running launcher touches its actions
    action_id = adhoc_action(world, store)
    action = give_slot(world, store["id"], action_id)
    world.agent.hold(action_id)  # the task exists; its engine has not started yet

    with pytest.raises(Crash) as crash:
        world.launcher(CrashingLauncher).launch(action, store["data"])
    [arn] = world.tasks_for(action_id)
    assert str(crash.value) == arn
    assert world.action(action_id)["state"] == "PENDING" and world.action(action_id)["ecs_task_arn"] is None

    again = world.launcher()  # the redelivery, e.g. by a restarted launcher
    assert again.launch(action, store["data"]) == arn
    assert world.tasks_for(action_id) == [arn]  # no second task
    assert world.action(action_id)["ecs_task_arn"] == arn
    assert again.launch(action, store["data"]) == arn  # and once more, with the task recorded
    assert world.tasks_for(action_id) == [arn]

    world.agent.release(action_id)  # the one task runs the engine, which completes the action
    done = wait_for(lambda: (a := world.action(action_id))["state"] in ("COMPLETED", "FAILED") and a,
                    what="the action finished")
    assert done["state"] == "COMPLETED" and done["ecs_task_arn"] == arn
    assert world.tasks_for(action_id) == [arn]
    assert world.agent.wait_for(lambda: world.agent.task_of(action_id).stopped)
    assert world.agent.task_of(action_id).exit_codes == [0]


def test_lost_engine_container_fails_the_action_and_deactivates_the_datastore(world: World) -> None:
    """Reference §15.3 test 14 on ECS: the container dies without checking in; the task STOPS; the orphan
    check of the running dart fails the action, and the failure deactivates the datastore."""
    store = datastore(world.api, "ACTIVE", sleep=60)
    action_id = adhoc_action(world, store, state="RUNNING")
    arn = wait_for(lambda: world.action(action_id)["ecs_task_arn"], what="the task recorded")
    assert world.agent.wait_for(lambda: bool((t := world.agent.task_of(action_id)) and t.processes))
    assert world.agent.kill(action_id) == 1
    failed = wait_for(lambda: (a := world.action(action_id))["state"] == "FAILED" and a,
                      what="the lost action FAILED")
    assert "the ECS task STOPPED unexpectedly" in failed["error_message"]
    assert world.task(arn)["lastStatus"] == "STOPPED"
    assert world.agent.task_of(action_id).exit_codes == [-9]
    assert wait_for(lambda: world.api.get(f"/datastore/{store['id']}")["data"]["state"] == "INACTIVE",
                    what="the datastore INACTIVE")
    assert world.tasks_for(action_id) == [arn]


def test_stale_pending_without_a_task_goes_back_to_the_queue_and_then_runs(world: World) -> None:
    store = datastore(world.api, "INACTIVE")
    action_id = adhoc_action(world, store)
    give_slot(world, store["id"], action_id)  # a launcher recorded its intent, then died before run_task

    now = datetime.now(UTC)
    assert action_id not in world.launcher(now=now).check_stale()["requeued"]  # not stale yet
    assert world.action(action_id)["state"] == "PENDING"

    later = now + timedelta(seconds=STALE_SECONDS + 1)
    result = world.launcher(now=later).check_stale()
    assert action_id in result["requeued"] and action_id not in result["failed"]
    assert world.action(action_id)["state"] == "QUEUED"
    assert world.tasks_for(action_id) == []
    assert world.launcher(now=later).check_stale()["requeued"] == []  # once

    world.api.put(f"/datastore/{store['id']}", {"data": {**world.api.get(f"/datastore/{store['id']}")["data"],
                                                         "state": "ACTIVE"}})
    done = wait_for(lambda: (a := world.action(action_id))["state"] in ("COMPLETED", "FAILED") and a,
                    what="the re-queued action ran")
    assert done["state"] == "COMPLETED"
    assert world.tasks_for(action_id) == [done["ecs_task_arn"]]


def test_stale_pending_with_a_task_is_failed_not_requeued(world: World) -> None:
    store = datastore(world.api, "INACTIVE")
    action_id = adhoc_action(world, store)
    action = give_slot(world, store["id"], action_id)
    world.agent.hold(action_id)  # the task never runs its engine
    with pytest.raises(Crash):
        world.launcher(CrashingLauncher).launch(action, store["data"])
    [arn] = world.tasks_for(action_id)
    assert world.agent.wait_for(lambda: world.agent.task_of(action_id) is not None)  # seen, and held

    later = datetime.now(UTC) + timedelta(seconds=STALE_SECONDS + 1)
    result = world.launcher(now=later).check_stale()
    assert action_id in result["failed"] and action_id not in result["requeued"]
    failed = world.action(action_id)
    assert failed["state"] == "FAILED" and "stayed PENDING" in failed["error_message"]
    assert failed["ecs_task_arn"] == arn  # found by startedBy and recorded
    assert world.task(arn)["desiredStatus"] == "STOPPED"  # the launcher stopped the task
    assert world.tasks_for(action_id) == [arn]
    assert world.agent.task_of(action_id).processes == []


def _running_ecs_action(world: World, action_id: str) -> str:
    """Wait for the action to run on its task; the task's ARN."""
    wait_for(lambda: world.action(action_id)["state"] == "RUNNING", what="the action RUNNING on ECS")
    return str(world.action(action_id)["ecs_task_arn"])


def test_a_cancel_stops_the_task_and_the_engine_s_output_comes_from_cloudwatch(world: World) -> None:
    store = datastore(world.api, "ACTIVE", sleep=120)
    flow = workflow(world.api, store, [SUCCEEDS])
    started = world.api.ok("POST", f"/workflow/{flow['id']}/do-manual-trigger")
    assert started == "OK"
    [instance] = world.api.get(f"/workflow/{flow['id']}/instance")
    action_id = wait_for(lambda: next((a["id"] for a in world.api.get(
        "/action", params={"filters": [f"workflow_instance_id = {instance['id']}"]})), None), what="its action")
    arn = _running_ecs_action(world, action_id)
    logs = wait_for(lambda: (found := world.api.get(f"/action/{action_id}/logs"))["text"] and found,
                    what="the engine's output in CloudWatch Logs")
    assert logs["source"] == "cloudwatch" and f"checked out action {action_id}" in logs["text"]
    done = world.api.post(f"/workflow/instance/{instance['id']}/cancel", None)
    assert done == "OK"
    wait_for(lambda: world.task(arn)["desiredStatus"] == "STOPPED", what="the task stopped")
    assert world.task(arn)["stoppedReason"].startswith("dart: cancelled by ")
    assert world.action(action_id)["state"] == "FAILED"
    assert world.agent.wait_for(lambda: all(p.poll() is not None for p in world.agent.task_of(action_id).processes))


def test_a_timed_out_ecs_action_fails_and_its_task_is_stopped(world: World) -> None:
    store = datastore(world.api, "ACTIVE", sleep=120)
    [action] = world.api.post(f"/datastore/{store['id']}/action", [{"data": {
        "name": name("slow"), "action_type_name": SUCCEEDS, "engine_name": "no_op_engine", "timeout_seconds": 1,
        "on_failure": "CONTINUE"}}])
    arn = _running_ecs_action(world, action["id"])
    wait_for(lambda: world.action(action["id"])["state"] == "FAILED", what="the timeout")
    assert world.action(action["id"])["error_message"] == "timed out after 1 s"
    wait_for(lambda: world.task(arn)["desiredStatus"] == "STOPPED", what="the task stopped")
    assert world.task(arn)["stoppedReason"] == "dart: timed out after 1 s"
