"""Workflows running end to end in `dart up` with real no_op engine processes (reference §15.3 tests 7-10,
13, 14 and the extra checks of §15), on SQLite and on PostgreSQL."""

from __future__ import annotations

import copy
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE
from tests.e2e.api_client import Api
from tests.e2e.conftest import BACKENDS, RunningDart
from tests.support import pg

SUCCEEDS, FAILS = "fake_action_that_succeeds", "fake_action_that_fails"


@pytest.fixture(scope="module", params=BACKENDS)
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    home = tmp_path_factory.mktemp(f"runs-{request.param}")
    extra = {"DART_POLL_INTERVAL": "0.2"}
    if request.param == "postgres":
        server = pg.server_url_from_env()
        if server is None:
            pytest.skip(pg.SKIP_REASON)
        with pg.temporary_database(server) as url:
            running = RunningDart(home, url, **extra)
            yield running
            running.stop()
    else:
        running = RunningDart(home, None, **extra)
        yield running
        running.stop()


@pytest.fixture(scope="module")
def api(dart: RunningDart) -> Api:
    client = dart.api()
    client.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    return client


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


def datastore(api: Api, state: str = "TEMPLATE", sleep: int = 0) -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": name("ds"), "engine_name": "no_op_engine", "state": state,
                                            "args": {"action_sleep_time_in_seconds": sleep}}})


def workflow(api: Api, store: dict[str, Any], actions: list[str], **data: Any) -> dict[str, Any]:
    flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": name("wf"), "state": "ACTIVE", **data}})
    api.post(f"/workflow/{flow['id']}/action", [
        {"data": {"name": f"a{i}", "action_type_name": t, "engine_name": "no_op_engine",
                  **({"args": {"source_hdfs_path": "hdfs://x", "destination_s3_path": "s3://b/x"}}
                     if t == "fake_copy_hdfs_to_s3" else {})}}
        for i, t in enumerate(actions)
    ])
    return flow


def instances(api: Api, flow: dict[str, Any]) -> list[dict[str, Any]]:
    return api.get(f"/workflow/{flow['id']}/instance", params={"limit": 100})


def finished(api: Api, flow: dict[str, Any], count: int = 1, timeout: float = 60.0) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        found = instances(api, flow)
        done = [i for i in found if i["data"]["state"] in ("COMPLETED", "FAILED")]
        return found if len(done) >= count and len(done) == len(found) else None

    return wait_for(check, timeout, what=f"{count} finished instance(s) of {flow['data']['name']}")


def instance_actions(api: Api, instance: dict[str, Any]) -> list[dict[str, Any]]:
    found = api.get("/action", params={"filters": [f"workflow_instance_id = {instance['id']}"], "limit": 100})
    return sorted(found, key=lambda a: a["data"]["order_idx"])


def trigger(api: Api, type_name: str, args: dict[str, Any], workflow_ids: list[str]) -> dict[str, Any]:
    return api.post("/trigger", {"data": {"name": name("t"), "trigger_type_name": type_name, "state": "ACTIVE",
                                          "args": args, "workflow_ids": workflow_ids}})


def test_workflow_chaining(api: Api) -> None:
    wf0 = workflow(api, datastore(api), [SUCCEEDS, SUCCEEDS])
    wf1 = workflow(api, datastore(api), [SUCCEEDS, SUCCEEDS])
    trigger(api, "workflow_completion", {"completed_workflow_id": wf0["id"]}, [wf1["id"]])
    api.post(f"/workflow/{wf0['id']}/do-manual-trigger", None)
    assert finished(api, wf0)[0]["data"]["state"] == "COMPLETED"
    chained = finished(api, wf1)
    assert [i["data"]["state"] for i in chained] == ["COMPLETED"]
    assert chained[0]["data"]["trigger_type"] == "workflow_completion"
    actions = instance_actions(api, chained[0])
    assert [a["data"]["state"] for a in actions] == ["COMPLETED", "COMPLETED"]
    assert actions[0]["data"]["first_in_workflow"] and actions[1]["data"]["last_in_workflow"]
    assert actions[0]["data"]["end_time"] <= actions[1]["data"]["start_time"]  # strictly in order


def test_workflow_failure(api: Api) -> None:
    store = datastore(api, state="ACTIVE")
    flow = workflow(api, store, [FAILS])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = finished(api, flow)
    assert instance["data"]["state"] == "FAILED" and "failed as expected" in instance["data"]["error_message"]
    assert wait_for(lambda: api.get(f"/workflow/{flow['id']}")["data"]["state"] == "INACTIVE", what="deactivation")
    assert api.get(f"/datastore/{store['id']}")["data"]["state"] == "INACTIVE"  # workflow on_failure DEACTIVATE
    status, body = api.request("POST", f"/workflow/{flow['id']}/do-manual-trigger")
    assert status == 400 and "not ACTIVE" in body["error_message"]


def test_super_trigger_workflow_chaining(api: Api) -> None:
    wf0 = workflow(api, datastore(api), [SUCCEEDS])
    wf1 = workflow(api, datastore(api), [SUCCEEDS])
    wc = trigger(api, "workflow_completion", {"completed_workflow_id": wf0["id"]}, [])
    trigger(api, "super", {"fire_after": "ALL", "completed_trigger_ids": [wc["id"]]}, [wf1["id"]])
    api.post(f"/workflow/{wf0['id']}/do-manual-trigger", None)
    assert [i["data"]["state"] for i in finished(api, wf1)] == ["COMPLETED"]


def test_super_trigger_super_trigger(api: Api) -> None:
    wf0 = workflow(api, datastore(api), [SUCCEEDS, "fake_copy_hdfs_to_s3"])
    wf1 = workflow(api, datastore(api), ["fake_copy_hdfs_to_s3"])
    wc = trigger(api, "workflow_completion", {"completed_workflow_id": wf0["id"]}, [])
    super1 = trigger(api, "super", {"fire_after": "ALL", "completed_trigger_ids": [wc["id"]]}, [])
    trigger(api, "super", {"fire_after": "ANY", "completed_trigger_ids": [super1["id"]]}, [wf1["id"]])
    api.post(f"/workflow/{wf0['id']}/do-manual-trigger", None)
    assert [i["data"]["state"] for i in finished(api, wf1)] == ["COMPLETED"]


def test_super_all_waits_for_every_input_and_resets_after_firing(api: Api) -> None:
    wf_a = workflow(api, datastore(api), [SUCCEEDS])
    wf_b = workflow(api, datastore(api), [SUCCEEDS])
    target = workflow(api, datastore(api), [SUCCEEDS], concurrency=2)
    ta = trigger(api, "workflow_completion", {"completed_workflow_id": wf_a["id"]}, [])
    tb = trigger(api, "workflow_completion", {"completed_workflow_id": wf_b["id"]}, [])
    both = trigger(api, "super", {"fire_after": "ALL", "completed_trigger_ids": [ta["id"], tb["id"]]},
                   [target["id"]])
    api.post(f"/workflow/{wf_a['id']}/do-manual-trigger", None)
    finished(api, wf_a)
    wait_for(lambda: ((api.get(f"/trigger/{both['id']}")["data"].get("extra_data") or {}).get(
        "completed_trigger_id_times") or {}).get(ta["id"]), what="the first input recorded")
    assert instances(api, target) == []
    api.post(f"/workflow/{wf_b['id']}/do-manual-trigger", None)
    assert [i["data"]["state"] for i in finished(api, target)] == ["COMPLETED"]
    assert api.get(f"/trigger/{both['id']}")["data"]["extra_data"]["completed_trigger_id_times"] == {}


def test_skipped_cascade_after_a_failure(api: Api) -> None:
    flow = workflow(api, datastore(api), [SUCCEEDS, FAILS, SUCCEEDS, SUCCEEDS])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = finished(api, flow)
    states = [a["data"]["state"] for a in instance_actions(api, instance)]
    assert states == ["COMPLETED", "FAILED", "SKIPPED", "SKIPPED"]
    skipped = instance_actions(api, instance)[2]
    assert "A prior action" in skipped["data"]["error_message"]


def test_retries_create_retry_instances_then_deactivate(api: Api) -> None:
    flow = workflow(api, datastore(api), [FAILS], retries_on_failure=2)
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    runs = finished(api, flow, count=3)
    by_retry = sorted(runs, key=lambda i: i["data"]["retry_num"])
    assert [(i["data"]["trigger_type"], i["data"]["retry_num"]) for i in by_retry] == [
        ("manual", 0), ("retry", 1), ("retry", 2)]
    assert all(i["data"]["state"] == "FAILED" for i in runs)
    assert wait_for(lambda: api.get(f"/workflow/{flow['id']}")["data"]["state"] == "INACTIVE", what="deactivation")


def test_halt_fails_the_instance_but_keeps_the_workflow_active(api: Api) -> None:
    store = datastore(api)
    flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": name("wf"), "state": "ACTIVE"}})
    api.post(f"/workflow/{flow['id']}/action", [
        {"data": {"name": "boom", "action_type_name": FAILS, "engine_name": "no_op_engine", "on_failure": "HALT"}},
        {"data": {"name": "after", "action_type_name": SUCCEEDS, "engine_name": "no_op_engine"}},
    ])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = finished(api, flow)
    assert instance["data"]["state"] == "FAILED"
    assert [a["data"]["state"] for a in instance_actions(api, instance)] == ["FAILED", "SKIPPED"]
    assert api.get(f"/workflow/{flow['id']}")["data"]["state"] == "ACTIVE"


def test_continue_on_failure_runs_the_rest_and_completes(api: Api) -> None:
    store = datastore(api)
    flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": name("wf"), "state": "ACTIVE"}})
    api.post(f"/workflow/{flow['id']}/action", [
        {"data": {"name": "meh", "action_type_name": FAILS, "engine_name": "no_op_engine", "on_failure": "CONTINUE"}},
        {"data": {"name": "after", "action_type_name": SUCCEEDS, "engine_name": "no_op_engine"}},
    ])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = finished(api, flow)
    assert instance["data"]["state"] == "COMPLETED"
    assert [a["data"]["state"] for a in instance_actions(api, instance)] == ["FAILED", "COMPLETED"]


def test_concurrency_third_manual_trigger_refused_and_two_overlap(api: Api) -> None:
    flow = workflow(api, datastore(api, sleep=2), [SUCCEEDS], concurrency=2)
    assert api.request("POST", f"/workflow/{flow['id']}/do-manual-trigger")[0] == 200
    assert api.request("POST", f"/workflow/{flow['id']}/do-manual-trigger")[0] == 200
    status, body = api.request("POST", f"/workflow/{flow['id']}/do-manual-trigger")
    assert status == 400 and "Max concurrency reached: 2" in body["error_message"]
    runs = finished(api, flow, count=2)
    assert [i["data"]["state"] for i in runs] == ["COMPLETED", "COMPLETED"]
    first, second = (instance_actions(api, i)[0]["data"] for i in runs)
    assert first["start_time"] < second["end_time"] and second["start_time"] < first["end_time"]


def test_template_averages_and_completed_runs_are_kept(api: Api) -> None:
    flow = workflow(api, datastore(api), [SUCCEEDS])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    finished(api, flow)
    [template] = api.get("/action", params={"filters": [f"workflow_id = {flow['id']}", "state = TEMPLATE"]})
    assert template["data"]["completed_runs"] == 1 and template["data"]["avg_runtime"]
    assert api.get(f"/workflow/{flow['id']}")["data"]["avg_runtime"]


def test_lost_engine_process_fails_the_action_and_deactivates_the_datastore(dart: RunningDart, api: Api) -> None:
    store = datastore(api, state="ACTIVE", sleep=30)
    [action] = api.post(f"/datastore/{store['id']}/action", [
        {"data": {"name": "doomed", "action_type_name": SUCCEEDS, "engine_name": "no_op_engine"}}])
    wait_for(lambda: api.get(f"/action/{action['id']}")["data"]["state"] == "RUNNING", what="RUNNING")
    pid = _engine_pid(action["id"])
    os.kill(pid, signal.SIGKILL)
    failed = wait_for(lambda: (a := api.get(f"/action/{action['id']}"))["data"]["state"] == "FAILED" and a,
                      what="the lost action FAILED")
    assert "without checking in" in failed["data"]["error_message"]
    assert wait_for(lambda: api.get(f"/datastore/{store['id']}")["data"]["state"] == "INACTIVE", what="INACTIVE")


def _engine_pid(action_id: str) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if f"DART_ACTION_ID={action_id}".encode() in f.read().split(b"\0"):
                    return int(entry)
        except OSError:
            continue
    raise AssertionError(f"no engine process for {action_id}")
