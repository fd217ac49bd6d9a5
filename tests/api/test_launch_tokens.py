"""Engine credentials (issue 11, findings 1 and 6): only the action's own launch token (or an admin) checks out,
reports progress, reads its subscription elements and checks in; a token stops working the moment its action
ends in any way (check-in, failure, lost engine, deletion, requeue), at once in every process whatever the
verified-keys cache holds, and the write path itself refuses it after a check-in."""

from __future__ import annotations

import copy
from typing import Any

import falcon.testing
import pytest

from engines.no_op.definition import NO_OP_ENGINE
from events.streams.action import ActionPending, ActionRequeued
from events.types import NewEvent, StreamAppend
from services.api.app import create_app
from services.api.listing import SchemaCache
from services.commands.actions import complete_action
from services.commands.auth import Authenticator, Principal, create_api_key, verified_keys
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.commands.launcher import Launcher
from services.domain.errors import NotAuthenticated
from tests.api.conftest import Api, InProcessDart, basic, unique

ROLES = ("viewer", "operator", "editor")


@pytest.fixture(scope="module")
def cached(dart: InProcessDart) -> falcon.testing.TestClient:
    """The production app's authentication: verified keys remembered (here for 60 s, not 2)."""
    store = dart.store
    app = create_app(entities=EntityService(store, dart.container), authenticate=Authenticator(store, verified_keys(60)),
                     orchestration=Orchestration(store, dart.container.settings.s3_datastores_root),
                     projections=dart.container.projections, secrets=dart.container.secrets,
                     guess_dataset=dart.guess, schema_cache=SchemaCache())
    dart.api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    return falcon.testing.TestClient(app)


def pending_action(dart: InProcessDart, api: Api) -> dict[str, Any]:
    datastore = api.post("/datastore", {"data": {
        "name": unique("ds"), "engine_name": "no_op_engine", "state": "INACTIVE",
        "args": {"action_sleep_time_in_seconds": 0}}})
    [action] = api.post(f"/datastore/{datastore['id']}/action", [{"data": {
        "name": unique("a"), "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}])
    dart.store.append(StreamAppend(f"action-{action['id']}", action["version_id"], [
        NewEvent(ActionPending({"state": "PENDING"}))]))
    return action


def token_of(dart: InProcessDart, client: falcon.testing.TestClient, action: dict[str, Any]) -> tuple[Api, str]:
    key, secret = create_api_key(dart.store, "engine@no_op_engine", f"action:{action['id']}", actor="launcher")
    return Api(client, basic(key, secret)), key


def test_only_the_action_s_token_or_an_admin_may_check_it_out(dart: InProcessDart, cached: Any) -> None:
    action = pending_action(dart, dart.api)
    for role in ROLES:
        user = dart.api.as_key(*create_api_key(dart.store, f"{role}@example.com", role))
        status, body = user.request("PUT", f"/engine/action/{action['id']}/checkout")
        assert status == 403 and "needs role admin or the action's launch token" in body["error_message"], body
        assert "password" not in str(body)
    other, _ = token_of(dart, cached, pending_action(dart, dart.api))
    assert other.request("PUT", f"/engine/action/{action['id']}/checkout")[0] == 403
    assert dart.api.get(f"/action/{action['id']}")["data"]["state"] == "PENDING"
    token, _ = token_of(dart, cached, action)
    assert token.put(f"/engine/action/{action['id']}/checkout", None)["action"]["data"]["state"] == "RUNNING"


def test_a_token_reads_the_subscription_elements_of_its_own_action_only(dart: InProcessDart, cached: Any) -> None:
    mine, theirs = pending_action(dart, dart.api), pending_action(dart, dart.api)
    token, _ = token_of(dart, cached, mine)
    assert token.request("GET", f"/action/{mine['id']}/subscription/elements")[0] not in (401, 403)
    status, body = token.request("GET", f"/action/{theirs['id']}/subscription/elements")
    assert status == 403 and theirs["id"] in body["error_message"]


def test_no_write_is_accepted_after_a_check_in_though_the_key_is_cached(dart: InProcessDart, cached: Any) -> None:
    action = pending_action(dart, dart.api)
    token, _ = token_of(dart, cached, action)
    token.put(f"/engine/action/{action['id']}/checkout", None)
    token.patch(f"/action/{action['id']}", [{"op": "add", "path": "/data/progress", "value": 0.5}])  # now cached
    token.put(f"/engine/action/{action['id']}/checkin", {"state": "SUCCESS"})

    progress = [{"op": "add", "path": "/data/progress", "value": 0.9}]
    host = [{"op": "add", "path": "/data/host", "value": "late.example"}]
    assert token.request("PATCH", f"/action/{action['id']}", progress)[0] == 401
    assert token.request("PATCH", f"/datastore/{action['data']['datastore_id']}", host)[0] == 401
    assert token.request("GET", f"/action/{action['id']}")[0] == 401
    assert dart.api.get(f"/action/{action['id']}")["data"]["progress"] == 0.5


def test_the_write_path_itself_refuses_a_token_whose_action_ended(dart: InProcessDart, cached: Any) -> None:
    """What closes the race of a write already past the gate when the check-in commits: the update decides
    again on the action's state (and its append is guarded by the action's version)."""
    action = pending_action(dart, dart.api)
    _, key = token_of(dart, cached, action)
    service = EntityService(dart.store, dart.container)
    token = Principal(key=key, user_id="engine@no_op_engine", scope=f"action:{action['id']}")
    service.patch("action", action["id"], [{"op": "add", "path": "/data/progress", "value": 0.1}], token)
    complete_action(Orchestration(dart.store), action["id"], "FAILED", "lost", None)
    with pytest.raises(NotAuthenticated, match="FAILED"):
        service.patch("action", action["id"], [{"op": "add", "path": "/data/progress", "value": 0.2}], token)


@pytest.mark.parametrize("end", ["failure", "requeue", "deletion"])
def test_a_token_stops_at_once_when_its_action_ends_in_any_way(dart: InProcessDart, cached: Any, end: str) -> None:
    action = pending_action(dart, dart.api)
    token, key = token_of(dart, cached, action)
    assert token.request("GET", f"/action/{action['id']}")[0] == 200  # verified and cached for 60 s
    orch = Orchestration(dart.store)
    if end == "failure":  # what the launchers' lost-engine checks and a supervised exit do
        complete_action(orch, action["id"], "FAILED", "its engine process exited without checking in", None)
    elif end == "requeue":
        version = dart.api.get(f"/action/{action['id']}")["version_id"]
        dart.store.append(StreamAppend(f"action-{action['id']}", version, [
            NewEvent(ActionRequeued({"state": "QUEUED"}))]))
    else:
        dart.api.delete(f"/action/{action['id']}")
    status, body = token.request("GET", f"/action/{action['id']}")
    assert status == 401 and action["id"] in body["error_message"], body

    # The launcher takes the key itself out of service as it handles the end (once, however often delivered).
    [ended] = [e for e in dart.store.read_stream(f"action-{action['id']}")][-1:]
    launcher = Launcher(orch, "http://127.0.0.1:1/api/1")
    launcher.handle([ended])
    launcher.handle([ended])
    assert [e.type for e in dart.store.read_stream(f"api_key-{key}")] == ["ApiKeyCreated", "ApiKeyRevoked"]


def test_a_requeue_handled_late_leaves_the_next_launch_s_token(dart: InProcessDart, cached: Any) -> None:
    action = pending_action(dart, dart.api)
    _, old = token_of(dart, cached, action)
    version = dart.api.get(f"/action/{action['id']}")["version_id"]
    [requeued] = dart.store.append(StreamAppend(f"action-{action['id']}", version, [
        NewEvent(ActionRequeued({"state": "QUEUED"}))]))
    _, new = token_of(dart, cached, action)  # the next launch's, minted before the requeue is handled

    Launcher(Orchestration(dart.store), "http://127.0.0.1:1/api/1").handle([requeued])

    assert [e.type for e in dart.store.read_stream(f"api_key-{old}")][-1] == "ApiKeyRevoked"
    assert [e.type for e in dart.store.read_stream(f"api_key-{new}")] == ["ApiKeyCreated"]
