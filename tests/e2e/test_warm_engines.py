"""Warm engine starts (issue 16) end to end on `dart up` (SQLite: the warm machinery does not touch the
store): built-in engines are forked from a warm parent per engine type, and are supervised as a cold process
is: their output in the action's log, cancel and timeout stop them, a restarted dart adopts them, and a warm
parent killed mid-action leaves its child to today's lost-engine rules while the next action gets a new
parent."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.adapters.local_engines import engine_alive, engine_pids
from tests.e2e.flows import (
    SUCCEEDS,
    action_spec,
    datastore,
    finished,
    instance_actions,
    instances,
    wait_for,
    workflow,
)
from tests.e2e.stacks import RunningDart


@pytest.fixture(scope="module")
def dart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    running = RunningDart(tmp_path_factory.mktemp("dart-warm"), None, DART_POLL_INTERVAL="0.2",
                          DART_ENGINE_STOP_GRACE_SECONDS="2")
    try:
        yield running
    finally:
        running.stop()


def _start(dart: RunningDart, flow: dict[str, Any]) -> str:
    api = dart.api()
    before = {i["id"] for i in instances(api, flow)}
    api.ok("POST", f"/workflow/{flow['id']}/do-manual-trigger")
    return str(wait_for(lambda: next((i["id"] for i in instances(api, flow) if i["id"] not in before), None),
                        what="the new instance"))


def _running(dart: RunningDart, instance_id: str) -> tuple[str, int]:
    """The instance's RUNNING action and its engine's pid."""
    api = dart.api()
    action = wait_for(lambda: next((a for a in instance_actions(api, {"id": instance_id})
                                    if a["data"]["state"] == "RUNNING"), None), what="a RUNNING action")
    [pid] = wait_for(lambda: engine_pids(action["id"]), what="the engine process")
    return action["id"], pid


def _parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])


def _is_warm_fork(pid: int) -> bool:
    """A warm child runs the interpreter its warm parent started (`python -m engines.warm ...`), not its own."""
    return b"engines.warm" in Path(f"/proc/{pid}/cmdline").read_bytes()


def _action(dart: RunningDart, action_id: str) -> dict[str, Any]:
    return dict(dart.api().get(f"/action/{action_id}")["data"])


def test_a_workflow_runs_on_warm_children_with_their_output_in_the_action_s_log(dart: RunningDart) -> None:
    api = dart.api()
    flow = workflow(api, datastore(api, "ACTIVE", sleep=2), [SUCCEEDS, SUCCEEDS, "fake_action_that_fails"])
    instance_id = _start(dart, flow)
    action_id, pid = _running(dart, instance_id)
    assert _is_warm_fork(pid)
    assert _parent_of(pid) != dart.proc.pid  # forked by the warm parent, not started by dart
    assert os.getsid(pid) == pid  # a session of its own, as the cold process had
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"DART_ACTION_ID={action_id}".encode() in environ and not any(
        v.startswith((b"DART_BOOTSTRAP_API_KEY=", b"DART_HOME=", b"DART_WARM_ENV_PAD=")) for v in environ)
    assert Path(os.readlink(f"/proc/{pid}/cwd")).name == "work"  # its private working folder
    [run] = finished(api, flow)
    assert run["data"]["state"] == "FAILED"
    actions = instance_actions(api, run)
    assert [a["data"]["state"] for a in actions] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert actions[2]["data"]["error_message"].startswith("a2 failed as expected")
    for action in actions:
        text = api.get(f"/action/{action['id']}/logs")["text"]
        assert text.startswith("--- dart: a warm fork of ") and f"for action {action['id']}" in text
        assert f"checked out action {action['id']}" in text  # the child's own stderr (the SDK's log)
    failed = wait_for(lambda: (t := api.get(f"/action/{actions[2]['id']}/logs")["text"])
                      and "exited with code 1" in t and t, what="the failed engine's exit in its log")
    assert f"action {actions[2]['id']} failed" in failed and "checked in action" in failed


def test_cancel_and_timeout_stop_a_warm_child(dart: RunningDart) -> None:
    api = dart.api()
    store = datastore(api, "ACTIVE", sleep=120)
    flow = workflow(api, store, [SUCCEEDS, SUCCEEDS])
    instance_id = _start(dart, flow)
    action_id, pid = _running(dart, instance_id)
    assert _is_warm_fork(pid)
    status, answer = api.request("POST", f"/workflow/instance/{instance_id}/cancel", {"reason": "stop it"})
    assert status == 200 and answer["cancelled_actions"] == [action_id]
    wait_for(lambda: not engine_alive(pid, action_id), timeout=30, what="the warm child stopped")
    assert _action(dart, action_id)["state"] == "FAILED"

    slow = workflow(api, datastore(api, "ACTIVE", sleep=120),
                    [action_spec(SUCCEEDS, "slow", timeout_seconds=1, on_failure="HALT")])
    timed_id, timed_pid = _running(dart, _start(dart, slow))
    assert _is_warm_fork(timed_pid)
    [run] = finished(api, slow)
    assert run["data"]["state"] == "FAILED"
    assert _action(dart, timed_id)["error_message"] == "timed out after 1 s"
    wait_for(lambda: not engine_alive(timed_pid, timed_id), timeout=30, what="the timed-out warm child stopped")


def test_a_killed_warm_parent_leaves_its_child_to_the_lost_engine_rules_and_is_replaced(dart: RunningDart) -> None:
    api = dart.api()
    store = datastore(api, "ACTIVE", sleep=3)
    flow = workflow(api, store, [SUCCEEDS])
    first_id, first_pid = _running(dart, _start(dart, flow))
    parent = _parent_of(first_pid)
    assert b"engines.warm" in Path(f"/proc/{parent}/cmdline").read_bytes()
    os.kill(parent, signal.SIGKILL)
    [run] = finished(api, flow)  # the child lives on in its own session and checks in
    assert run["data"]["state"] == "COMPLETED" and _action(dart, first_id)["state"] == "COMPLETED"

    lost = workflow(api, store, [SUCCEEDS])
    lost_id, lost_pid = _running(dart, _start(dart, lost))
    new_parent = _parent_of(lost_pid)
    assert new_parent != parent and _is_warm_fork(lost_pid)  # the next action started a new warm parent
    os.kill(new_parent, signal.SIGKILL)
    os.kill(lost_pid, signal.SIGKILL)  # parent and child gone: the action is a lost engine's
    failed = wait_for(lambda: (a := _action(dart, lost_id))["state"] == "FAILED" and a, what="the lost action")
    assert failed["error_message"] == "the engine process exited without checking in"

    again = workflow(api, datastore(api, "ACTIVE", sleep=3), [SUCCEEDS])  # the failure deactivated ``store``
    _, again_pid = _running(dart, _start(dart, again))
    assert _parent_of(again_pid) not in (parent, new_parent) and _is_warm_fork(again_pid)
    assert [i["data"]["state"] for i in finished(api, again)] == ["COMPLETED"]


def test_a_restarted_dart_adopts_a_running_warm_child(dart: RunningDart) -> None:
    api = dart.api()
    store = datastore(api, "ACTIVE", sleep=4)
    flow = workflow(api, store, [SUCCEEDS])
    action_id, pid = _running(dart, _start(dart, flow))
    parent = _parent_of(pid)
    dart.kill()
    wait_for(lambda: not _alive(parent), timeout=10, what="the warm parent gone with its dart")
    assert engine_alive(pid, action_id)
    dart.start()
    wait_for(lambda: "watching 1 engine(s)" in (dart.home / "dart.log").read_text(),
             what="the restarted dart up adopting the warm child")
    [run] = finished(api, flow)
    assert run["data"]["state"] == "COMPLETED"
    assert _action(dart, action_id)["ecs_task_arn"] == f"local:{pid}"

    killed = workflow(api, store, [SUCCEEDS])
    killed_id, killed_pid = _running(dart, _start(dart, killed))
    dart.kill()
    dart.start()
    wait_for(lambda: (dart.home / "dart.log").read_text().count("watching 1 engine(s)") >= 2,
             what="the second adoption")
    os.kill(killed_pid, signal.SIGKILL)
    failed = wait_for(lambda: (a := _action(dart, killed_id))["state"] == "FAILED" and a, what="the lost action")
    assert failed["error_message"] == f"its engine process (pid {killed_pid}) exited without checking in"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return False
