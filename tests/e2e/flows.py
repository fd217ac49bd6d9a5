"""The black-box helpers the end-to-end modules share: waiting for a condition, unique names, and building and
reading datastores, workflows, triggers and instances over the REST API."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from typing import Any

from engines.no_op.definition import NO_OP_ENGINE
from bench.harness.api_client import Api

SUCCEEDS, FAILS = "fake_action_that_succeeds", "fake_action_that_fails"
NO_OP = "no_op_engine"
DONE = ("COMPLETED", "FAILED")


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition", every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


def register_no_op(api: Api) -> dict[str, Any]:
    """The no_op engine as registered: `dart up` registers it at start, the production wiring does not (the
    engine's own register command does the same: create, or replace the one of that name)."""
    found = api.get("/engine", params={"filters": [f"name = {NO_OP}"]})
    if found:
        return api.put(f"/engine/{found[0]['id']}", {"data": copy.deepcopy(NO_OP_ENGINE)})
    return api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})


def datastore(api: Api, state: str = "TEMPLATE", sleep: int = 0, **data: Any) -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": name("ds"), "engine_name": NO_OP, "state": state,
                                            "args": {"action_sleep_time_in_seconds": sleep}, **data}})


def action_spec(action_type: str, action_name: str, **data: Any) -> dict[str, Any]:
    args = ({"args": {"source_hdfs_path": "hdfs://x", "destination_s3_path": "s3://b/x"}}
            if action_type == "fake_copy_hdfs_to_s3" else {})
    return {"data": {"name": action_name, "action_type_name": action_type, "engine_name": NO_OP, **args, **data}}


def workflow(api: Api, store: dict[str, Any], actions: list[str | dict[str, Any]], **data: Any) -> dict[str, Any]:
    """An ACTIVE workflow on ``store`` whose actions are action types (or full action specs), in order."""
    flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": name("wf"), "state": "ACTIVE", **data}})
    api.post(f"/workflow/{flow['id']}/action", [
        action_spec(a, f"a{i}") if isinstance(a, str) else a for i, a in enumerate(actions)])
    return flow


def adhoc_action(api: Api, store: dict[str, Any], action_type: str = SUCCEEDS) -> dict[str, Any]:
    [action] = api.post(f"/datastore/{store['id']}/action", [action_spec(action_type, name("a"))])
    return action


def trigger(api: Api, type_name: str, args: dict[str, Any], workflow_ids: list[str],
            state: str = "ACTIVE") -> dict[str, Any]:
    return api.post("/trigger", {"data": {"name": name("t"), "trigger_type_name": type_name, "state": state,
                                          "args": args, "workflow_ids": workflow_ids}})


def instances(api: Api, flow: dict[str, Any]) -> list[dict[str, Any]]:
    return api.get(f"/workflow/{flow['id']}/instance", params={"limit": 100})


def finished(api: Api, flow: dict[str, Any], count: int = 1, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The workflow's instances, once at least ``count`` exist and every one of them has finished."""
    def check() -> list[dict[str, Any]] | None:
        found = instances(api, flow)
        done = [i for i in found if i["data"]["state"] in DONE]
        return found if len(done) >= count and len(done) == len(found) else None

    return wait_for(check, timeout, what=f"{count} finished instance(s) of {flow['data']['name']}")


def instance_actions(api: Api, instance: dict[str, Any]) -> list[dict[str, Any]]:
    found = api.get("/action", params={"filters": [f"workflow_instance_id = {instance['id']}"], "limit": 100})
    return sorted(found, key=lambda a: a["data"]["order_idx"])


def history(api: Api, category: str, entity_id: str) -> list[dict[str, Any]]:
    return api.ok("GET", f"/{category}/{entity_id}/history", params={"limit": 1000})


def history_types(api: Api, category: str, entity_id: str) -> list[str]:
    return [e["type"] for e in history(api, category, entity_id)]
