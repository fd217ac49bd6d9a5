"""Issue 11 over the in-process API: ``POST /event/{id}/fire`` fires an event's triggers as the broker inbox
would, and triggers that would fire themselves (finding 13) are refused with a 400 naming the loop."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE
from services.commands.auth import create_api_key
from tests.api.conftest import Api, InProcessDart, unique


@pytest.fixture(scope="module")
def datastore(api: Api) -> dict[str, Any]:
    api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    return api.post("/datastore", {"data": {"name": unique("ds"), "engine_name": "no_op_engine",
                                            "state": "TEMPLATE", "args": {"action_sleep_time_in_seconds": 0}}})


def workflow(api: Api, datastore: dict[str, Any]) -> dict[str, Any]:
    flow = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": unique("wf"), "state": "ACTIVE",
                                                                        "concurrency": 10}})
    api.post(f"/workflow/{flow['id']}/action", [{"data": {
        "name": "a0", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}])
    return flow


def trigger(api: Api, kind: str, args: dict[str, Any], workflow_ids: list[str]) -> tuple[int, Any]:
    """(status, the trigger created or the error body)."""
    status, body = api.request("POST", "/trigger", {"data": {
        "name": unique("t"), "trigger_type_name": kind, "state": "ACTIVE", "args": args, "workflow_ids": workflow_ids}})
    return status, body["results"] if status == 200 else body


# ------------------------------------------------------------------------------------------ event fire
def test_firing_an_active_event_starts_the_workflows_of_its_active_triggers(api: Api, datastore: dict[str, Any],
                                                                          dart: InProcessDart) -> None:
    flow = workflow(api, datastore)
    event = api.post("/event", {"data": {"name": unique("ev"), "state": "ACTIVE"}})
    status, on_event = trigger(api, "event", {"event_id": event["id"]}, [flow["id"]])
    assert status == 200, on_event
    operator = api.as_key(*create_api_key(dart.store, "op@example.com", "operator"))
    status, body = operator.request("POST", f"/event/{event['id']}/fire", headers={"Idempotency-Key": "k1"})
    assert status == 200 and body == {"results": "OK", "fired": True, "trigger_ids": [on_event["id"]]}
    [instance] = api.get(f"/workflow/{flow['id']}/instance")
    assert instance["data"]["trigger_type"] == "event" and instance["data"]["trigger_id"] == on_event["id"]
    # The same caller's Idempotency-Key fires once; a request without one is a new fire.
    assert operator.request("POST", f"/event/{event['id']}/fire", headers={"Idempotency-Key": "k1"})[0] == 200
    assert len(api.get(f"/workflow/{flow['id']}/instance")) == 1
    operator.post(f"/event/{event['id']}/fire", None)
    assert len(api.get(f"/workflow/{flow['id']}/instance")) == 2


def test_an_inactive_event_fires_nothing_and_an_unknown_one_is_a_404(api: Api, datastore: dict[str, Any],
                                                                    dart: InProcessDart) -> None:
    flow = workflow(api, datastore)
    event = api.post("/event", {"data": {"name": unique("ev"), "state": "INACTIVE"}})
    assert trigger(api, "event", {"event_id": event["id"]}, [flow["id"]])[0] == 200
    status, body = api.request("POST", f"/event/{event['id']}/fire")
    assert status == 200 and body == {"results": "OK", "fired": False, "trigger_ids": []}
    assert api.get(f"/workflow/{flow['id']}/instance") == []
    assert api.request("POST", "/event/NOSUCHEVENT/fire")[0] == 404
    viewer = api.as_key(*create_api_key(dart.store, "viewer@example.com", "viewer"))
    status, body = viewer.request("POST", f"/event/{event['id']}/fire")
    assert status == 403 and "needs role operator" in body["error_message"]


# ------------------------------------------------------------------------------------------ loops
def test_a_workflow_completion_trigger_on_its_own_workflow_is_a_400_naming_the_loop(
        api: Api, datastore: dict[str, Any]) -> None:
    flow = workflow(api, datastore)
    status, body = trigger(api, "workflow_completion", {"completed_workflow_id": flow["id"]}, [flow["id"]])
    assert status == 400, body
    assert f"workflow {flow['id']} -> trigger" in body["error_message"] and "is a loop" in body["error_message"]
    allowed, body = trigger(api, "workflow_completion", {"completed_workflow_id": flow["id"],
                                                         "allow_cycle_min_interval_seconds": 60}, [flow["id"]])
    assert allowed == 200 and body["data"]["args"]["allow_cycle_min_interval_seconds"] == 60


def test_a_loop_through_two_workflows_is_refused_when_its_last_trigger_closes_it(
        api: Api, datastore: dict[str, Any]) -> None:
    first, second = workflow(api, datastore), workflow(api, datastore)
    status, t1 = trigger(api, "workflow_completion", {"completed_workflow_id": first["id"]}, [second["id"]])
    assert status == 200
    status, body = trigger(api, "workflow_completion", {"completed_workflow_id": second["id"]}, [first["id"]])
    assert status == 400
    assert (f"workflow {first['id']} -> trigger {t1['id']} -> workflow {second['id']} -> trigger"
            in body["error_message"])


def test_super_triggers_naming_each_other_are_refused_on_update(api: Api, datastore: dict[str, Any]) -> None:
    flow = workflow(api, datastore)
    status, s1 = trigger(api, "super", {"fire_after": "ANY", "completed_trigger_ids": ["NOSUCHTRIG"]}, [])
    assert status == 200
    status, s2 = trigger(api, "super", {"fire_after": "ANY", "completed_trigger_ids": [s1["id"]]}, [flow["id"]])
    assert status == 200
    patch = [{"op": "replace", "path": "/data/args/completed_trigger_ids", "value": [s2["id"]]}]
    status, body = api.request("PATCH", f"/trigger/{s1['id']}", patch)
    assert status == 400 and f"trigger {s1['id']} -> trigger {s2['id']} -> trigger {s1['id']}" in body["error_message"]
    assert api.get(f"/trigger/{s1['id']}")["data"]["args"]["completed_trigger_ids"] == ["NOSUCHTRIG"]
