"""Roles (issue 11): every route x every role answers as the route table's access column says, operators
change only a workflow's or trigger's state, old "user" keys are editors, and every refusal is a logged 403
naming the role needed."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE
from events.streams.action import ActionPending
from events.types import NewEvent, StreamAppend
from services.api.openapi import document
from services.api.routes import ROUTES
from services.commands.auth import create_api_key
from services.domain.roles import ENGINE, ROLES
from tests.api.conftest import Api, InProcessDart, unique

NOWHERE = "NOSUCHID00"  # ids no entity has: an allowed call answers 4xx (never 401/403), a refused one 403
COLUMNS = (*ROLES, ENGINE)


@pytest.fixture(scope="module")
def world(dart: InProcessDart) -> dict[str, Any]:
    api = dart.api
    api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    datastore = api.post("/datastore", {"data": {
        "name": unique("ds"), "engine_name": "no_op_engine", "state": "INACTIVE",
        "args": {"action_sleep_time_in_seconds": 0}}})
    [action] = api.post(f"/datastore/{datastore['id']}/action", [{"data": {
        "name": unique("a"), "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}])
    keys = {role: create_api_key(dart.store, f"{role}@example.com", role) for role in ROLES}
    keys[ENGINE] = create_api_key(dart.store, "engine@no_op_engine", f"action:{action['id']}")
    # As the launcher leaves it: a launch token works only while its action is PENDING or RUNNING.
    dart.store.append(StreamAppend(f"action-{action['id']}", action["version_id"], [
        NewEvent(ActionPending({"state": "PENDING"}))]))
    return {"datastore": datastore, "action": action, "keys": keys}


def _path(path: str, column: str, world: dict[str, Any]) -> str:
    """Role columns get ids that do not exist; the launch token gets its own action and datastore, where the
    table lets it write."""
    if column == ENGINE:
        own = world["datastore"]["id"] if path.startswith("/datastore/") else world["action"]["id"]
        return re.sub(r"{entity_id}", own, path).replace("{engine_name}", "no_op_engine").replace(
            "{action_name}", "fake_action_that_succeeds")
    return re.sub(r"{\w+}", NOWHERE, path)


def _body(method: str) -> Any:
    # Nothing a gate-passing call could record: an envelope the service refuses, an empty JSON Patch.
    return {"POST": {"unknown": 1}, "PUT": {"unknown": 1}, "PATCH": [], "DELETE": None, "GET": None}[method]


CASES = [(route, method) for route in ROUTES for method in sorted(route.methods)]


@pytest.mark.parametrize("route,method", CASES, ids=[f"{m} {r.full_path}" for r, m in CASES])
def test_every_route_answers_every_role_as_the_table_says(dart: InProcessDart, world: dict[str, Any],
                                                          route: Any, method: str) -> None:
    rule = route.access[method]
    for column in COLUMNS:
        key, secret = world["keys"][column]
        api = Api(dart.api.client, None, prefix=route.prefix).as_key(key, secret)
        status, body = api.request(method, _path(route.path, column, world), _body(method))
        if rule.admits(column):
            assert status not in (401, 403) and status < 500, (column, status, body)
        else:
            assert status == 403, (column, status, body)
            assert f"needs role {rule.describe()}" in body["error_message"], body


def test_every_method_of_every_route_has_a_role_and_the_document_shows_it() -> None:
    paths = document(ROUTES)["paths"]
    for route in ROUTES:
        assert set(route.access) == set(route.methods), route.path
        if route.documented and route.shape != "probe":
            for method, rule in route.access.items():
                operation = paths[route.full_path][method.lower()]
                assert operation["x-dart-role"] == rule.role
                assert f"Role: {rule.describe()}." in operation["description"]


@pytest.mark.parametrize("method,path,role", [
    ("GET", "/api/1/workflow", "viewer"),
    ("GET", "/api/1/workflow/{entity_id}/history", "viewer"),
    ("POST", "/api/1/workflow/{entity_id}/do-manual-trigger", "operator"),
    ("POST", "/api/1/event/{entity_id}/fire", "operator"),
    ("PATCH", "/api/1/workflow/{entity_id}", "editor"),  # an operator only for the state (tested below)
    ("POST", "/api/1/datastore", "editor"),
    ("DELETE", "/api/1/datastore/{entity_id}", "editor"),
    ("POST", "/api/1/engine", "admin"),
    ("DELETE", "/api/1/engine/{entity_id}", "admin"),
    ("GET", "/api/1/log", "admin"),
    ("POST", "/api/1/api_key", "admin"),
    ("PUT", "/api/1/engine/action/{entity_id}/checkout", "admin"),  # or the action's own launch token
    ("GET", "/health", "open"),
])
def test_the_table_gives_the_issue_s_roles(method: str, path: str, role: str) -> None:
    [route] = [r for r in ROUTES if r.full_path == path]
    assert route.access[method].role == role


def test_an_operator_changes_a_workflow_s_state_but_nothing_else(dart: InProcessDart, world: dict[str, Any]) -> None:
    workflow = dart.api.post(f"/datastore/{world['datastore']['id']}/workflow", {"data": {"name": unique("wf")}})
    path = f"/workflow/{workflow['id']}"
    operator = dart.api.as_key(*world["keys"]["operator"])
    activated = operator.patch(path, [{"op": "replace", "path": "/data/state", "value": "ACTIVE"}])
    assert activated["data"]["state"] == "ACTIVE"
    whole = copy.deepcopy(activated)  # a PUT of the whole entity that changes only the state is activation too
    whole["data"]["state"] = "INACTIVE"
    whole.pop("version_id")
    assert operator.put(path, whole)["data"]["state"] == "INACTIVE"
    status, body = operator.request("PATCH", path, [{"op": "replace", "path": "/data/concurrency", "value": 3},
                                                    {"op": "replace", "path": "/data/state", "value": "ACTIVE"}])
    assert status == 403 and "concurrency" in body["error_message"] and "role editor" in body["error_message"]
    assert dart.api.get(path)["data"]["state"] == "INACTIVE"  # nothing of the refused patch was recorded
    editor = dart.api.as_key(*world["keys"]["editor"])
    assert editor.patch(path, [{"op": "replace", "path": "/data/concurrency", "value": 3}])["data"]["concurrency"] == 3


def test_an_operator_activates_a_trigger_and_a_viewer_may_not(dart: InProcessDart, world: dict[str, Any]) -> None:
    workflow = dart.api.post(f"/datastore/{world['datastore']['id']}/workflow", {"data": {"name": unique("wf")}})
    then = dart.api.post(f"/datastore/{world['datastore']['id']}/workflow", {"data": {"name": unique("wf")}})
    trigger = dart.api.post("/trigger", {"data": {
        "name": unique("t"), "trigger_type_name": "workflow_completion", "state": "INACTIVE",
        "args": {"completed_workflow_id": workflow["id"]}, "workflow_ids": [then["id"]]}})  # not a loop
    patch = [{"op": "replace", "path": "/data/state", "value": "ACTIVE"}]
    status, body = dart.api.as_key(*world["keys"]["viewer"]).request("PATCH", f"/trigger/{trigger['id']}", patch)
    assert status == 403 and "needs role editor (operator to change only state)" in body["error_message"]
    operator = dart.api.as_key(*world["keys"]["operator"])
    assert operator.patch(f"/trigger/{trigger['id']}", patch)["data"]["state"] == "ACTIVE"
    status, body = operator.request("PATCH", f"/trigger/{trigger['id']}",
                                    [{"op": "replace", "path": "/data/name", "value": "renamed"}])
    assert status == 403 and body["error_message"].startswith("name: role operator may change only")


def test_a_key_made_before_roles_without_admin_is_an_editor(dart: InProcessDart) -> None:
    api = dart.api.as_key(*create_api_key(dart.store, "old@example.com", "user"))
    status, _ = api.request("POST", "/dataset", {"unknown": 1})
    assert status == 400  # past the gate: an editor may create
    status, body = api.request("POST", "/engine", {"unknown": 1})
    assert status == 403 and "needs role admin" in body["error_message"] and "role is editor" in body["error_message"]


def test_a_refusal_is_logged_with_the_key_and_the_route(dart: InProcessDart, world: dict[str, Any],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    key, secret = world["keys"]["viewer"]
    with caplog.at_level(logging.WARNING, logger="dart.api"):
        status, _ = dart.api.as_key(key, secret).request("DELETE", f"/datastore/{NOWHERE}")
    assert status == 403
    [record] = [r for r in caplog.records if r.name == "dart.api" and "403" in r.getMessage()]
    assert key in record.getMessage() and "DELETE /api/1/datastore/{entity_id}" in record.getMessage()
    assert "needs role editor" in record.getMessage()
