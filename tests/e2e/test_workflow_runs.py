"""Workflows running end to end with real no_op engine processes (reference §15.3 tests 7-10, 13, 14 and the
extra checks of §15), every case on every wiring (tests/e2e/stacks.py): `dart up` on SQLite and on
PostgreSQL, and production (PostgreSQL, SQS on moto, engines as ECS tasks started by the test ECS agent,
every dart process on its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.harness.api_client import Api
from tests.e2e.flows import (
    FAILS,
    SUCCEEDS,
    adhoc_action,
    datastore,
    finished,
    instance_actions,
    instances,
    name,
    register_no_op,
    trigger,
    wait_for,
    workflow,
)
from tests.e2e.stacks import WIRINGS, Running, running


@pytest.fixture(scope="module", params=WIRINGS)
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(request.param, tmp_path_factory.mktemp(f"runs-{request.param}")) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(dart: Running) -> Api:
    client = dart.api()
    register_no_op(client)
    return client


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


def test_lost_engine_fails_the_action_and_deactivates_the_datastore(dart: Running, api: Api) -> None:
    """Reference §15.3 test 14: the engine dies without checking in. Embedded: the supervised local process
    exits; production: the ECS agent's engine process is killed, the agent reports the task STOPPED, and the
    launcher's orphan check fails the action."""
    store = datastore(api, state="ACTIVE", sleep=30)
    action = adhoc_action(api, store)
    wait_for(lambda: api.get(f"/action/{action['id']}")["data"]["state"] == "RUNNING", what="RUNNING")
    assert dart.kill_engine(action["id"]) == 1
    failed = wait_for(lambda: (a := api.get(f"/action/{action['id']}"))["data"]["state"] == "FAILED" and a,
                      what="the lost action FAILED")
    assert dart.lost_engine_message in failed["data"]["error_message"]
    assert wait_for(lambda: api.get(f"/datastore/{store['id']}")["data"]["state"] == "INACTIVE", what="INACTIVE")
