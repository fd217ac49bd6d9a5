"""A datastore's secret args (issue 11, findings 3-5), in-process: the whole body is validated first (a required
secret can be saved, its constraints are checked, no error quotes it), the value reaches the secrets store only
once the append committed, an update keeps an omitted secret and rotates a given one (an event holding a
reference), a TEMPLATE's clone hands its template's secret to its engine, and an Idempotency-Key replay by
another caller changes nothing of the first caller's secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

from events.store import EventStore
from events.streams.action import ActionPending
from events.types import NewEvent, StreamAppend
from services.commands.auth import create_api_key
from tests.api.conftest import Api, InProcessDart, unique

PASSWORD_OPTIONS = {
    "type": "object",
    "properties": {
        "password": {"type": "string", "x-dart-secret": True, "minLength": 8},
        "user": {"type": "string", "default": "dart"},
    },
    "required": ["password"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine_name(api: Api) -> str:
    name = unique("secret_engine")
    api.post("/engine", {"data": {
        "name": name, "description": "an engine whose password is a required secret",
        "options_json_schema": PASSWORD_OPTIONS,
        "supported_action_types": [{"name": "noop", "description": "d", "params_json_schema": None}],
    }})
    return name


def datastore(api: Api, engine_name: str, password: Any, state: str = "INACTIVE", **headers: str) -> tuple[int, Any]:
    args = {"user": "u"} if password is None else {"user": "u", "password": password}
    return api.request("POST", "/datastore", {"data": {
        "name": unique("ds"), "engine_name": engine_name, "state": state, "args": args}}, headers=headers)


def checked_out_args(dart: InProcessDart, api: Api, datastore_id: str, engine_name: str) -> dict[str, Any]:
    """What an engine of an action on the datastore receives at check-out."""
    [action] = api.post(f"/datastore/{datastore_id}/action", [{"data": {
        "name": unique("a"), "action_type_name": "noop", "engine_name": engine_name}}])
    return checked_out(dart, api, action)


def checked_out(dart: InProcessDart, api: Api, action: dict[str, Any]) -> dict[str, Any]:
    make_pending(dart.store, api, action["id"])
    return api.put(f"/engine/action/{action['id']}/checkout", None)["datastore"]["data"]["args"]


def make_pending(store: EventStore, api: Api, action_id: str) -> None:
    version = api.get(f"/action/{action_id}")["version_id"]
    store.append(StreamAppend(f"action-{action_id}", version, [NewEvent(ActionPending({"state": "PENDING"}))]))


def stored_values(dart: InProcessDart) -> str:
    """Everything the embedded secrets store holds, decrypted, as one text."""
    return json.dumps(dart.container.secrets._load())  # type: ignore[attr-defined]


def whole_log(api: Api) -> str:
    return json.dumps(api.get("/log", params={"after": 0, "limit": 10000}))


def test_a_required_secret_is_saved_and_reaches_only_the_engine(dart: InProcessDart, api: Api,
                                                                engine_name: str) -> None:
    secret = "hunter2-" + unique("pw")
    status, created = datastore(api, engine_name, secret)
    assert status == 200, created
    created = created["results"]
    assert created["data"]["args"] == {"user": "u"}

    assert checked_out_args(dart, api, created["id"], engine_name) == {"user": "u", "password": secret}
    assert secret not in json.dumps(api.get(f"/datastore/{created['id']}"))
    assert secret not in json.dumps(api.get(f"/datastore/{created['id']}/history"))
    first = api.get(f"/datastore/{created['id']}/history")[0]["global_position"]
    assert secret not in json.dumps(api.get(f"/datastore/{created['id']}", params={"as_of": first}))
    log = whole_log(api)
    assert secret not in log and "DatastoreSecretsStored" in log  # the reference is logged, not the value


@pytest.mark.parametrize(("password", "words"), [
    (None, "'password' is a required property"),
    ("short12", "minLength"),
    (12345678, "type"),
])
def test_a_secret_is_validated_first_and_a_refusal_names_it_without_its_value_or_storing_it(
        dart: InProcessDart, api: Api, engine_name: str, password: Any, words: str) -> None:
    before = stored_values(dart)
    status, body = datastore(api, engine_name, password)
    assert status == 400 and words in body["error_message"] and "password" in body["error_message"], body
    if password is not None:
        assert str(password) not in body["error_message"], body
    assert stored_values(dart) == before  # no orphan secret


def test_an_update_keeps_an_omitted_secret_and_rotates_a_given_one(dart: InProcessDart, api: Api,
                                                                   engine_name: str) -> None:
    first, second, third = (f"{word}-{unique('pw')}" for word in ("first", "second", "third"))
    created = datastore(api, engine_name, first)[1]["results"]
    path = f"/datastore/{created['id']}"

    renamed = api.put(path, {"data": {**created["data"], "name": unique("renamed")}})  # args without password
    assert renamed["data"]["args"] == {"user": "u"}
    assert checked_out_args(dart, api, created["id"], engine_name)["password"] == first
    api.put(path, {"data": {**renamed["data"], "args": {"user": "u", "password": None}}})  # null keeps it too
    assert checked_out_args(dart, api, created["id"], engine_name)["password"] == first

    status, body = api.request("PATCH", path, [{"op": "add", "path": "/data/args/password", "value": "short"}])
    assert status == 400 and "minLength" in body["error_message"] and "short" not in body["error_message"]
    api.patch(path, [{"op": "add", "path": "/data/args/password", "value": second}])
    assert checked_out_args(dart, api, created["id"], engine_name)["password"] == second
    api.put(path, {"data": {**renamed["data"], "args": {"user": "u", "password": third}}})
    assert checked_out_args(dart, api, created["id"], engine_name)["password"] == third

    rotations = [e for e in dart.store.read_stream(f"datastore_secrets-{created['id']}")]
    assert [e.data["changed"] for e in rotations] == [["password"]] * 3
    assert len({e.data["secrets"]["password"]["version"] for e in rotations}) == 3
    log = whole_log(api)
    assert not any(value in log for value in (first, second, third))


def test_a_template_s_clone_hands_its_template_s_secret_to_its_engine(dart: InProcessDart, api: Api,
                                                                      engine_name: str) -> None:
    secret = "template-" + unique("pw")
    template = datastore(api, engine_name, secret, state="TEMPLATE")[1]["results"]
    workflow = api.post(f"/datastore/{template['id']}/workflow", {"data": {"name": unique("wf"), "state": "ACTIVE"}})
    api.post(f"/workflow/{workflow['id']}/action", [{"data": {
        "name": unique("a"), "action_type_name": "noop", "engine_name": engine_name}}])
    status, started = api.request("POST", f"/workflow/{workflow['id']}/do-manual-trigger")
    assert status == 200, started
    [instance] = api.get(f"/workflow/{workflow['id']}/instance")
    [action] = api.get("/action", params={"filters": [f"workflow_instance_id = {instance['id']}"]})
    assert action["data"]["datastore_id"] != template["id"]  # the run's own clone

    assert checked_out(dart, api, action)["password"] == secret


def test_an_idempotency_key_replay_by_another_caller_leaves_the_first_caller_s_secret(
        dart: InProcessDart, api: Api, engine_name: str) -> None:
    ann = api.as_key(*create_api_key(dart.store, "ann@example.com", "editor"))
    bob = api.as_key(*create_api_key(dart.store, "bob@example.com", "editor"))
    key = unique("idem")
    mine, theirs, changed = (f"{word}-{unique('pw')}" for word in ("ann", "bob", "ann-again"))
    body = {"data": {"name": unique("ds"), "engine_name": engine_name, "state": "INACTIVE",
                     "args": {"password": mine}}}
    first = ann.post("/datastore", body, headers={"Idempotency-Key": key})
    assert ann.post("/datastore", body, headers={"Idempotency-Key": key})["id"] == first["id"]  # a replay
    other = bob.post("/datastore", {"data": {**body["data"], "args": {"password": theirs}}},
                     headers={"Idempotency-Key": key})
    status, refused = ann.request("POST", "/datastore", {"data": {**body["data"], "args": {"password": changed}}},
                                  headers={"Idempotency-Key": key})

    assert other["id"] != first["id"]
    assert status == 422 and changed not in json.dumps(refused)
    assert changed not in stored_values(dart)
    assert checked_out_args(dart, api, first["id"], engine_name)["password"] == mine
    assert checked_out_args(dart, api, other["id"], engine_name)["password"] == theirs
