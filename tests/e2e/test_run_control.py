"""Run control (issue 15) end to end on `dart up`, SQLite and PostgreSQL: an action's engine output readable
while it runs and after (API and `dart logs`), cancelling an instance with a running engine and waiting
actions, timeouts, retries with backoff, and a workflow's max_runtime_seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.adapters.local_engines import engine_pids
from tests.e2e.conftest import KEY, SECRET, RunningDart
from tests.e2e.flows import (
    FAILS,
    NO_OP,
    SUCCEEDS,
    action_spec,
    datastore,
    finished,
    instance_actions,
    instances,
    wait_for,
    workflow,
)


def _cli(dart: RunningDart, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.runtime.cli", *args, "--api-url", f"{dart.base}/api/1",
                           "--key", f"{KEY}:{SECRET}"], env=dart.env, capture_output=True, text=True, timeout=120,
                          check=False)


def _start(dart: RunningDart, flow: dict[str, Any]) -> str:
    return str(dart.api().ok("POST", f"/workflow/{flow['id']}/do-manual-trigger") and
               instances(dart.api(), flow)[0]["id"])


def _running_action(dart: RunningDart, instance_id: str) -> dict[str, Any]:
    api = dart.api()
    return wait_for(lambda: next((a for a in instance_actions(api, {"id": instance_id})
                                  if a["data"]["state"] == "RUNNING"), None), what="a RUNNING action")


def _log_with(api: Any, action_id: str, needle: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found: dict[str, Any] = api.get(f"/action/{action_id}/logs")
        return found if needle in found["text"] else None

    return wait_for(check, what=f"{needle!r} in the action's log")


def test_an_action_s_output_is_readable_while_it_runs_and_after(dart: RunningDart) -> None:
    api = dart.api()
    store = datastore(api, "ACTIVE", sleep=3)
    flow = workflow(api, store, [SUCCEEDS])
    action = _running_action(dart, _start(dart, flow))
    running = _log_with(api, action["id"], "--- dart: ")
    assert running["source"] == "local" and running["finished"] is False
    assert running["text"].startswith("--- dart: ") and f"for action {action['id']} (attempt 1)" in running["text"]
    follow = _cli(dart, "logs", action["id"], "-f")  # returns once the action has ended
    assert follow.returncode == 0, follow.stderr
    finished(api, flow)
    after = _log_with(api, action["id"], "exited with code 0")
    assert after["finished"] is True and after["text"].startswith(running["text"])
    assert follow.stdout.startswith(running["text"])
    tail = api.get(f"/action/{action['id']}/logs", params={"offset": len(running["text"].encode())})
    assert running["text"] + tail["text"] == after["text"]
    printed = _cli(dart, "logs", action["id"])
    assert printed.returncode == 0 and printed.stdout == after["text"]


def test_cancel_stops_the_engine_fails_the_rest_frees_the_slot_and_applies_no_on_failure(dart: RunningDart) -> None:
    api = dart.api()
    store = datastore(api, "ACTIVE", sleep=120)
    flow = workflow(api, store, [SUCCEEDS, SUCCEEDS, SUCCEEDS])  # on_failure DEACTIVATE: a failure would
    instance_id = _start(dart, flow)                              # deactivate the workflow and the datastore
    first = _running_action(dart, instance_id)
    wait_for(lambda: engine_pids(first["id"]), what="the engine process")
    quick = datastore(api, "ACTIVE", sleep=0)  # another datastore's work is untouched
    status, answer = api.request("POST", f"/workflow/instance/{instance_id}/cancel", {"reason": "wrong input"})
    assert status == 200, answer
    assert answer["error_message"].startswith("cancelled by ") and answer["error_message"].endswith(": wrong input")
    assert answer["cancelled_actions"] == [first["id"]] and answer["already_cancelled"] is False
    instance = api.get(f"/workflow/instance/{instance_id}")["data"]
    assert instance["state"] == "FAILED" and instance["error_message"] == answer["error_message"]
    assert instance["cancelled_by"]
    states = [(a["data"]["state"], a["data"]["error_message"]) for a in instance_actions(api, {"id": instance_id})]
    assert states[0] == ("FAILED", answer["error_message"])
    assert [s for s, _ in states[1:]] == ["SKIPPED", "SKIPPED"]
    wait_for(lambda: not engine_pids(first["id"]), timeout=30, what="the engine process stopped")
    assert api.get(f"/workflow/{flow['id']}")["data"]["state"] == "ACTIVE"  # no on_failure applied
    assert api.get(f"/datastore/{store['id']}")["data"]["state"] == "ACTIVE"
    # Its slot is free: the same datastore runs the next run at once (sleep overridden by a quick action).
    api.put(f"/datastore/{store['id']}", {"data": {**api.get(f"/datastore/{store['id']}")["data"],
                                                   "args": {"action_sleep_time_in_seconds": 0}}})
    second = workflow(api, store, [SUCCEEDS])
    _start(dart, second)
    assert [i["data"]["state"] for i in finished(api, second)] == ["COMPLETED"]
    again = _cli(dart, "cancel", instance_id, "--reason", "twice")  # idempotent: answered as it is
    assert again.returncode == 0 and f"workflow instance {instance_id} was already cancelled" in again.stdout
    done = instances(api, second)[0]["id"]
    refused = api.request("POST", f"/workflow/instance/{done}/cancel")
    assert refused[0] == 400 and "is COMPLETED" in refused[1]["error_message"]
    assert api.request("POST", "/workflow/instance/nope/cancel")[0] == 404
    assert quick["data"]["state"] == "ACTIVE"


def test_a_timed_out_action_is_retried_with_backoff_then_fails_by_the_workflow_s_rules(dart: RunningDart) -> None:
    api = dart.api()
    store = datastore(api, "ACTIVE", sleep=60)
    flow = workflow(api, store, [action_spec(SUCCEEDS, "slow", timeout_seconds=1, retries=2, retry_delay_seconds=1,
                                             retry_backoff_rate=3, on_failure="HALT")])
    _start(dart, flow)
    [run] = finished(api, flow, timeout=90)
    assert run["data"]["state"] == "FAILED"
    attempts = instance_actions(api, run)
    attempts.sort(key=lambda a: a["data"].get("attempt") or 1)
    assert [a["data"].get("attempt") or 1 for a in attempts] == [1, 2, 3]
    assert all(a["data"]["state"] == "FAILED" and a["data"]["error_message"] == "timed out after 1 s"
               for a in attempts)
    assert {a["data"].get("retry_of") for a in attempts[1:]} == {attempts[0]["id"]}
    for before, after, delay in zip(attempts, attempts[1:], (1, 3)):
        ended = datetime.fromisoformat(before["data"]["end_time"])
        due = datetime.fromisoformat(after["data"]["not_before"])
        assert due - ended == timedelta(seconds=delay)
        assert datetime.fromisoformat(after["data"]["start_time"]) >= due
    assert api.get(f"/workflow/{flow['id']}")["data"]["state"] == "ACTIVE"  # HALT: nothing deactivated
    for attempt in attempts:
        wait_for(lambda a=attempt: not engine_pids(a["id"]), timeout=30, what="every attempt's engine stopped")


def test_a_failing_action_with_retries_runs_again_as_new_attempts(dart: RunningDart) -> None:
    api = dart.api()
    store = datastore(api, "ACTIVE", sleep=0)
    flow = workflow(api, store, [action_spec(FAILS, "flaky", retries=1, retry_delay_seconds=0,
                                             on_failure="CONTINUE"), SUCCEEDS])
    _start(dart, flow)
    [run] = finished(api, flow)
    actions = instance_actions(api, run)
    assert sorted((a["data"]["name"], a["data"].get("attempt") or 1, a["data"]["state"]) for a in actions) == [
        ("a1", 1, "COMPLETED"), ("flaky", 1, "FAILED"), ("flaky", 2, "FAILED")]
    assert run["data"]["state"] == "COMPLETED"  # CONTINUE once the retries were spent


def test_an_instance_past_its_max_runtime_is_stopped(dart: RunningDart) -> None:
    api = dart.api()
    store = datastore(api, "ACTIVE", sleep=120)
    flow = workflow(api, store, [SUCCEEDS, SUCCEEDS], max_runtime_seconds=2)
    instance_id = _start(dart, flow)
    [run] = finished(api, flow, timeout=60)
    assert run["id"] == instance_id and run["data"]["state"] == "FAILED"
    assert run["data"]["error_message"] == "cancelled by dart: timed out after 2 s (max_runtime_seconds)"
    first = instance_actions(api, run)[0]
    wait_for(lambda: not engine_pids(first["id"]), timeout=30, what="the engine stopped")
    assert store["data"]["engine_name"] == NO_OP


def test_an_engine_that_never_checks_out_is_failed_after_the_datastore_s_launch_timeout(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    stuck = {"stuck_engine": [sys.executable, "-c", "import time; time.sleep(120)"]}
    dart = RunningDart(tmp_path_factory.mktemp("stuck"), None, DART_LOCAL_ENGINES=json.dumps(stuck))
    try:
        api = dart.api()
        api.post("/engine", {"data": {"name": "stuck_engine", "supported_action_types": [
            {"name": "wait", "description": "never checks out", "params_json_schema": None}]}})
        store = api.post("/datastore", {"data": {"name": "stuck", "engine_name": "stuck_engine", "state": "ACTIVE",
                                                 "launch_timeout_seconds": 1}})
        [action] = api.post(f"/datastore/{store['id']}/action", [{"data": {
            "name": "w", "action_type_name": "wait", "engine_name": "stuck_engine", "on_failure": "CONTINUE"}}])
        wait_for(lambda: engine_pids(action["id"]), what="the engine process")
        failed = wait_for(lambda: (a := api.get(f"/action/{action['id']}")["data"])["state"] == "FAILED" and a,
                          what="the launch timeout")
        assert failed["error_message"] == "its engine did not start within 1 s (launch_timeout_seconds)"
        wait_for(lambda: not engine_pids(action["id"]), timeout=30, what="the stuck engine stopped")
    finally:
        dart.stop()
