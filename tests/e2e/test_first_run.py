"""A new user's first run (issue 11), black-box: a fresh `dart up` with only DART_BOOTSTRAP_API_KEY has every
built-in engine registered, `dart demo` runs the original's workflow chaining demo to COMPLETED over the API,
and a restart registers nothing again."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from engines.catalog import BUILT_IN_ENGINES
from tests.e2e.conftest import KEY, SECRET, RunningDart
from tests.e2e.flows import wait_for


@pytest.fixture(scope="module")
def dart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    running = RunningDart(tmp_path_factory.mktemp("first-run"), None)
    try:
        yield running
    finally:
        running.stop()


def test_a_fresh_dart_up_has_every_built_in_engine_registered(dart: RunningDart) -> None:
    engines = dart.api().get("/engine", params={"limit": 100})
    assert sorted(e["data"]["name"] for e in engines) == sorted(e.name for e in BUILT_IN_ENGINES)
    no_op = next(e for e in engines if e["data"]["name"] == "no_op_engine")
    assert "fake_action_that_succeeds" in {t["name"] for t in no_op["data"]["supported_action_types"]}


def test_the_workflow_chaining_demo_runs_to_completed_over_the_api(dart: RunningDart) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.runtime.cli", "demo", "--wait", "--api-url", f"{dart.base}/api/1",
         "--key", f"{KEY}:{SECRET}"], check=False, env={**dart.env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "workflow 1: COMPLETED; workflow 2: COMPLETED" in done.stdout
    api = dart.api()
    [trigger] = api.get("/trigger", params={"filters": ["trigger_type_name = workflow_completion"]})
    [second] = api.get(f"/workflow/{trigger['data']['workflow_ids'][0]}/instance")
    assert second["data"]["trigger_type"] == "workflow_completion" and second["data"]["state"] == "COMPLETED"
    actions = api.get("/action", params={"filters": [f"workflow_instance_id = {second['id']}"], "limit": 10})
    assert sorted(a["data"]["state"] for a in actions) == ["COMPLETED", "COMPLETED", "FAILED"]  # one fails, as ever


def test_a_restart_registers_nothing_again_and_restores_a_changed_definition(dart: RunningDart) -> None:
    api = dart.api()
    [no_op] = api.get("/engine", params={"filters": ["name = no_op_engine"]})
    changed = {**no_op["data"], "description": "changed by hand"}
    api.put(f"/engine/{no_op['id']}", {"data": changed})
    dart.stop()
    head = dart.head_position()
    dart.start()
    wait_for(lambda: dart.api().get(f"/engine/{no_op['id']}")["data"]["description"] != "changed by hand",
             what="the built-in definition restored")
    assert dart.head_position() == head + 1  # the no_op engine's update, nothing for the unchanged ones
    dart.stop()
    dart.start()
    assert dart.head_position() == head + 1




def test_an_event_fired_over_http_runs_its_trigger_s_workflow_without_a_broker(dart: RunningDart) -> None:
    api = dart.api()
    datastore = api.post("/datastore", {"data": {"name": "ev_ds", "engine_name": "no_op_engine", "state": "ACTIVE",
                                                 "args": {"action_sleep_time_in_seconds": 0}}})
    flow = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": "ev_wf", "state": "ACTIVE"}})
    api.post(f"/workflow/{flow['id']}/action", [{"data": {
        "name": "a0", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}])
    event = api.post("/event", {"data": {"name": "ev_http", "state": "ACTIVE"}})
    trigger = api.post("/trigger", {"data": {"name": "on_ev_http", "trigger_type_name": "event", "state": "ACTIVE",
                                             "args": {"event_id": event["id"]}, "workflow_ids": [flow["id"]]}})
    status, fired = api.request("POST", f"/event/{event['id']}/fire", headers={"Idempotency-Key": "first"})
    assert status == 200 and fired["fired"] is True and fired["trigger_ids"] == [trigger["id"]]
    run = wait_for(lambda: [i for i in api.get(f"/workflow/{flow['id']}/instance")
                            if i["data"]["state"] == "COMPLETED"], what="the event's run COMPLETED")
    assert run[0]["data"]["trigger_type"] == "event" and run[0]["data"]["trigger_id"] == trigger["id"]
