"""Check-out and check-in (reference §10), in-process: the rules of services/commands/engine_protocol.py called
directly, and the HTTP cases of tests/e2e/test_api_crud.py and tests/e2e/test_engine_sdk.py through the app.
The launcher's part (QUEUED -> PENDING) is done by appending its event, as those e2e tests do."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE, no_op_engine
from events.store import EventStore
from events.streams.action import ActionPending
from events.types import NewEvent, StreamAppend
from services.commands import engine_protocol as protocol
from services.commands.auth import Principal, create_api_key
from services.commands.entities import EntityService
from services.domain.errors import BadRequest, NotFound
from tests.api.conftest import ADMIN_USER, Api, InProcessDart, basic, unique

ADMIN = Principal(key="test-key", user_id=ADMIN_USER, scope="admin")


@pytest.fixture(scope="module")
def engine(api: Api) -> dict[str, Any]:
    return api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})


def new_action(api: Api, action_type: str = "fake_action_that_succeeds") -> dict[str, Any]:
    datastore = api.post("/datastore", {"data": {
        "name": unique("ds"), "engine_name": "no_op_engine", "state": "INACTIVE",
        "args": {"action_sleep_time_in_seconds": 0}}})
    [action] = api.post(f"/datastore/{datastore['id']}/action", [{"data": {
        "name": unique(action_type), "action_type_name": action_type, "engine_name": "no_op_engine"}}])
    return action


def make_pending(store: EventStore, api: Api, action_id: str) -> None:
    """The launcher's part: nothing else moves the action here, so its version is the one just read."""
    version = api.get(f"/action/{action_id}")["version_id"]
    store.append(StreamAppend(f"action-{action_id}", version, [NewEvent(ActionPending({"state": "PENDING"}))]))


def history(api: Api, action_id: str) -> list[dict[str, Any]]:
    return api.get(f"/action/{action_id}/history", params={"limit": 1000})


def types(api: Api, action_id: str) -> list[str]:
    return [e["type"] for e in history(api, action_id)]


def service(dart: InProcessDart) -> EntityService:
    return EntityService(dart.store, dart.container)


# -- the rules, without falcon --------------------------------------------------------------------------


def test_check_out_takes_a_pending_action_once_and_check_in_records_the_result(dart: InProcessDart, api: Api,
                                                                              engine: dict[str, Any]) -> None:
    action = new_action(api)
    with pytest.raises(BadRequest, match="no longer PENDING"):
        protocol.check_out(service(dart), action["id"], ADMIN_USER, None)
    make_pending(dart.store, api, action["id"])

    taken = protocol.check_out(service(dart), action["id"], ADMIN_USER, None)

    assert taken.engine["data"]["name"] == "no_op_engine"
    assert taken.action["id"] == action["id"] and taken.action["data"]["state"] == "RUNNING"
    assert taken.datastore["id"] == action["data"]["datastore_id"]
    with pytest.raises(BadRequest, match="no longer PENDING"):
        protocol.check_out(service(dart), action["id"], ADMIN_USER, None)
    protocol.check_in(service(dart), action["id"], protocol.ActionResult("FAILURE", "boom", None), ADMIN)
    with pytest.raises(BadRequest, match="not RUNNING"):
        protocol.check_in(service(dart), action["id"], protocol.ActionResult("SUCCESS"), ADMIN)
    after = api.get(f"/action/{action['id']}")
    assert after["data"]["state"] == "FINISHING" and after["data"]["error_message"] == "boom"
    with pytest.raises(NotFound):
        protocol.check_out(service(dart), "NOSUCHACTN", ADMIN_USER, None)


def test_a_success_drops_the_error_message(dart: InProcessDart, api: Api, engine: dict[str, Any]) -> None:
    action = new_action(api)
    make_pending(dart.store, api, action["id"])
    protocol.check_out(service(dart), action["id"], ADMIN_USER, None)
    protocol.check_in(service(dart), action["id"], protocol.ActionResult("SUCCESS", "ignored", "SUCCESS"), ADMIN)
    [checkin] = [e for e in history(api, action["id"]) if e["type"] == "ActionCheckedIn"]
    assert checkin["data"] == {"result": "COMPLETED", "error_message": None, "consume_subscription_state": "SUCCESS"}


@pytest.mark.parametrize(("body", "words"), [
    (None, "ActionResult"),
    ([], "ActionResult"),
    ({"state": "SUCCESS", "colour": "red"}, "colour"),
    ({"state": "MAYBE"}, "state"),
    ({}, "state"),
    ({"state": "SUCCESS", "consume_subscription_state": "MAYBE"}, "consume_subscription_state"),
    ({"state": "FAILURE", "error_message": 7}, "error_message"),
])
def test_a_check_in_body_is_refused_naming_the_field(body: Any, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        protocol.parse_action_result(body)


def test_a_check_in_body_is_parsed() -> None:
    assert protocol.parse_action_result({"state": "FAILURE", "error_message": "x"}) == \
        protocol.ActionResult("FAILURE", "x", None)


def test_of_concurrent_check_outs_exactly_one_wins(dart: InProcessDart, api: Api, engine: dict[str, Any]) -> None:
    action = new_action(api)
    make_pending(dart.store, api, action["id"])
    start = threading.Barrier(8)

    def check_out(_: int) -> str:
        start.wait()
        try:
            protocol.check_out(service(dart), action["id"], ADMIN_USER, None)
            return "won"
        except BadRequest:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(check_out, range(8)))
    assert outcomes == ["refused"] * 7 + ["won"], outcomes
    assert types(api, action["id"]).count("ActionCheckedOut") == 1


# -- over HTTP ------------------------------------------------------------------------------------------


def test_checkout_needs_pending_and_checkin_needs_running(api: Api, engine: dict[str, Any]) -> None:
    action = new_action(api)
    status, body = api.request("PUT", f"/engine/action/{action['id']}/checkout")
    assert status == 400 and "PENDING" in body["error_message"]
    status, body = api.request("PUT", f"/engine/action/{action['id']}/checkin", {"state": "SUCCESS"})
    assert status == 400 and "RUNNING" in body["error_message"]
    status, body = api.request("PUT", f"/engine/action/{action['id']}/checkin", {"state": "MAYBE"})
    assert status == 400 and "state" in body["error_message"]
    assert api.request("PUT", "/engine/action/NOSUCHACTN/checkout")[0] == 404
    assert "ActionCheckedOut" not in types(api, action["id"])


def test_two_engines_can_never_both_check_out_one_action(dart: InProcessDart, api: Api,
                                                         engine: dict[str, Any]) -> None:
    action = new_action(api)
    make_pending(dart.store, api, action["id"])
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: api.request("PUT", f"/engine/action/{action['id']}/checkout"), range(8)))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(200) == 1 and statuses.count(400) == 7, statuses
    assert types(api, action["id"]).count("ActionCheckedOut") == 1


def test_a_check_out_retried_with_its_idempotency_key_is_answered_again_and_no_other(
        dart: InProcessDart, api: Api, engine: dict[str, Any]) -> None:
    """An engine whose check-out dart committed but never answered (dart killed mid-answer) retries it: with the
    same Idempotency-Key it gets the same answer instead of "no longer PENDING"; any other caller still does not."""
    action = new_action(api)
    make_pending(dart.store, api, action["id"])
    path = f"/engine/action/{action['id']}/checkout"
    first = api.request("PUT", path, headers={"Idempotency-Key": "engine-run-1"})
    again = api.request("PUT", path, headers={"Idempotency-Key": "engine-run-1"})
    assert first[0] == again[0] == 200
    assert again[1]["results"]["action"]["data"]["state"] == "RUNNING"
    assert again[1]["results"]["datastore"]["id"] == action["data"]["datastore_id"]
    assert api.request("PUT", path, headers={"Idempotency-Key": "engine-run-2"})[0] == 400
    assert api.request("PUT", path)[0] == 400
    assert types(api, action["id"]).count("ActionCheckedOut") == 1


def test_an_engine_runs_an_action_check_out_progress_check_in(dart: InProcessDart, api: Api,
                                                              engine: dict[str, Any]) -> None:
    action = new_action(api)
    make_pending(dart.store, api, action["id"])

    taken = api.put(f"/engine/action/{action['id']}/checkout", None)
    assert {"engine", "action", "datastore"} <= set(taken)
    assert taken["action"]["data"]["state"] == "RUNNING"
    assert taken["datastore"]["id"] == action["data"]["datastore_id"]
    for value in (0.5, 1.0):  # what the SDK's report_progress sends
        api.patch(f"/action/{action['id']}", [{"op": "add", "path": "/data/progress", "value": value}])
    assert api.put(f"/engine/action/{action['id']}/checkin",
                   {"state": "SUCCESS", "error_message": None, "consume_subscription_state": None}) == "OK"

    after = api.get(f"/action/{action['id']}")
    assert after["data"]["state"] == "FINISHING" and after["data"]["progress"] == 1.0
    events = history(api, action["id"])
    [checkin] = [e for e in events if e["type"] == "ActionCheckedIn"]
    assert checkin["data"]["result"] == "COMPLETED" and checkin["data"]["error_message"] is None
    assert checkin["metadata"]["actor"] == ADMIN_USER
    kinds = [e["type"] for e in events]
    progress = [i for i, e in enumerate(events) if e["type"] == "ActionUpdated" and "progress" in e["data"]["changes"]]
    assert [events[i]["data"]["changes"]["progress"] for i in progress] == [0.5, 1.0]
    assert kinds.index("ActionCheckedOut") < progress[0] and progress[-1] < kinds.index("ActionCheckedIn")


def test_a_failed_check_in_keeps_the_engines_message(dart: InProcessDart, api: Api, engine: dict[str, Any]) -> None:
    action = new_action(api, "fake_action_that_fails")
    make_pending(dart.store, api, action["id"])
    api.put(f"/engine/action/{action['id']}/checkout", None)
    message = "Traceback (most recent call last): ... ExpectedFailure"
    api.put(f"/engine/action/{action['id']}/checkin", {"state": "FAILURE", "error_message": message})
    after = api.get(f"/action/{action['id']}")
    assert after["data"]["state"] == "FINISHING" and after["data"]["error_message"] == message
    [checkin] = [e for e in history(api, action["id"]) if e["type"] == "ActionCheckedIn"]
    assert checkin["data"]["result"] == "FAILED" and checkin["data"]["error_message"] == message


def test_datastore_secrets_never_enter_the_log_but_reach_the_engine_at_checkout(dart: InProcessDart, api: Api) -> None:
    name = unique("secret_engine")
    api.post("/engine", {"data": {
        "name": name, "description": "x",
        "options_json_schema": {"type": "object", "properties": {
            "password": {"type": "string", "x-dart-secret": True}, "user": {"type": "string"}}},
        "supported_action_types": [{"name": "noop", "description": "d", "params_json_schema": None}],
    }})
    secret = "s3cr3t-" + unique("x")
    created = api.post("/datastore", {"data": {"name": unique("ds"), "engine_name": name, "state": "INACTIVE",
                                               "args": {"password": secret, "user": "u"}}})
    assert "password" not in created["data"]["args"] and created["data"]["args"]["user"] == "u"
    [action] = api.post(f"/datastore/{created['id']}/action", [{"data": {
        "name": "a", "action_type_name": "noop", "engine_name": name}}])
    make_pending(dart.store, api, action["id"])

    taken = api.put(f"/engine/action/{action['id']}/checkout", None)

    assert taken["datastore"]["data"]["args"] == {"password": secret, "user": "u"}
    assert secret not in repr(api.ok("GET", "/log", params={"after": 0, "limit": 10000}))
    assert secret not in repr(api.ok("GET", f"/datastore/{created['id']}/history"))
    assert "password" not in api.get(f"/datastore/{created['id']}")["data"]["args"]


def test_a_launch_token_changes_only_its_own_action_and_is_revoked_at_check_in(dart: InProcessDart, api: Api,
                                                                               engine: dict[str, Any]) -> None:
    action, other = new_action(api), new_action(api)
    make_pending(dart.store, api, action["id"])
    key, secret = create_api_key(dart.store, ADMIN_USER, f"action:{action['id']}")
    token = api.as_key(key, secret)

    assert token.request("PUT", f"/engine/action/{other['id']}/checkout")[0] == 403
    assert token.request("POST", "/event", {"data": {"name": unique("ev")}})[0] == 403
    assert token.get(f"/action/{other['id']}")["id"] == other["id"]  # it reads anything
    token.put(f"/engine/action/{action['id']}/checkout", None)
    token.patch(f"/action/{action['id']}", [{"op": "add", "path": "/data/progress", "value": 0.5}])
    token.patch(f"/datastore/{action['data']['datastore_id']}", [{"op": "add", "path": "/data/host", "value": "h"}])
    status, body = token.request("PATCH", f"/datastore/{other['data']['datastore_id']}",
                                 [{"op": "add", "path": "/data/host", "value": "h"}])
    assert status == 403 and action["id"] in body["error_message"]
    token.put(f"/engine/action/{action['id']}/checkin", {"state": "SUCCESS"})

    assert [e.type for e in dart.store.read_stream(f"api_key-{key}")][-1] == "ApiKeyRevoked"


def test_register_engine_is_idempotent_by_name(api: Api) -> None:
    """What the SDK's register_engine does: find by name, create, and replace on a second registration."""
    body = no_op_engine()
    body["name"] = unique("engine")
    assert api.get("/engine", params={"filters": [f"name = {body['name']}"], "limit": 1}) == []
    first = api.post("/engine", {"data": {**body, "description": "an older registration"}})
    status, refused = api.request("POST", "/engine", {"data": body})
    assert status == 400 and "already exists" in refused["error_message"]
    [found] = api.get("/engine", params={"filters": [f"name = {body['name']}"], "limit": 1})
    replaced = api.put(f"/engine/{found['id']}", {"data": body})
    assert replaced["id"] == first["id"] and replaced["version_id"] > first["version_id"]
    assert replaced["data"]["description"] == body["description"]


def test_report_progress_and_patch_datastore(api: Api, engine: dict[str, Any]) -> None:
    action = new_action(api)
    updated = api.patch(f"/action/{action['id']}", [{"op": "add", "path": "/data/progress", "value": 0.25},
                                                     {"op": "add", "path": "/data/extra_data", "value": {"step": "copy"}}])
    assert updated["data"]["progress"] == 0.25 and updated["data"]["extra_data"] == {"step": "copy"}
    datastore = api.patch(f"/datastore/{action['data']['datastore_id']}", [
        {"op": "add", "path": "/data/host", "value": "example.internal"},
        {"op": "add", "path": "/data/port", "value": 21050}])
    assert (datastore["data"]["host"], datastore["data"]["port"]) == ("example.internal", 21050)
    status, body = api.request("PATCH", f"/datastore/{action['data']['datastore_id']}",
                               [{"op": "add", "path": "/data/state", "value": "NOT_A_STATE"}])
    assert status == 400 and body["error_message"]


def test_basic_and_bearer_credentials_are_both_accepted(dart: InProcessDart) -> None:
    assert dart.api.request("GET", "/engine")[0] == 200
    bearer = dart.api.as_key(None)
    assert bearer.request("GET", "/engine", headers={"Authorization": f"Bearer {dart.key}:{dart.secret}"})[0] == 200
    assert basic(dart.key, dart.secret).startswith("Basic ")
