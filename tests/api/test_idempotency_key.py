"""The Idempotency-Key header (issue 11, finding 5): scoped to the caller's key, replayed for the same body,
a 422 naming the header for another body (it was silently the first entity, or a 500 on /engine and nested
action creates)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE
from services.commands.auth import create_api_key
from tests.api.conftest import Api, InProcessDart, unique


@pytest.fixture(scope="module")
def editors(dart: InProcessDart) -> tuple[Api, Api]:
    ann = dart.api.as_key(*create_api_key(dart.store, "ann@example.com", "editor"))
    bob = dart.api.as_key(*create_api_key(dart.store, "bob@example.com", "editor"))
    return ann, bob


@pytest.fixture(scope="module")
def datastore(api: Api) -> dict[str, Any]:
    api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    return api.post("/datastore", {"data": {"name": unique("ds"), "engine_name": "no_op_engine", "state": "INACTIVE",
                                            "args": {"action_sleep_time_in_seconds": 0}}})


def _named(api: Api, category: str, name: str) -> list[dict[str, Any]]:
    return api.get(f"/{category}", params={"filters": [f"name = {name}"]})


def test_two_callers_with_one_key_create_two_entities(editors: tuple[Api, Api]) -> None:
    ann, bob = editors
    name, header = unique("ev"), {"Idempotency-Key": unique("k")}
    first = ann.post("/event", {"data": {"name": name}}, headers=header)
    second = bob.post("/event", {"data": {"name": name}}, headers=header)
    assert first["id"] != second["id"]
    assert {e["id"] for e in _named(ann, "event", name)} == {first["id"], second["id"]}
    assert second["data"]["name"] == name


def test_a_replay_by_the_same_caller_answers_the_first_entity(editors: tuple[Api, Api]) -> None:
    ann, _ = editors
    name, header = unique("ev"), {"Idempotency-Key": unique("k")}
    first = ann.post("/event", {"data": {"name": name}}, headers=header)
    again = ann.post("/event", {"data": {"name": name}}, headers=header)
    assert again == first
    assert len(_named(ann, "event", name)) == 1


def test_the_same_key_with_another_body_is_a_422_naming_the_header(editors: tuple[Api, Api]) -> None:
    ann, _ = editors
    name, header = unique("ev"), {"Idempotency-Key": unique("k")}
    ann.post("/event", {"data": {"name": name}}, headers=header)
    status, body = ann.request("POST", "/event", {"data": {"name": name + "_other"}}, headers=header)
    assert status == 422 and body["error_message"].startswith("Idempotency-Key:")
    assert _named(ann, "event", name + "_other") == []


def test_an_engine_create_with_a_reused_key_and_another_body_is_a_422(api: Api) -> None:
    header = {"Idempotency-Key": unique("k")}
    engine = copy.deepcopy(NO_OP_ENGINE) | {"name": unique("engine")}
    first = api.post("/engine", {"data": engine}, headers=header)
    assert api.post("/engine", {"data": engine}, headers=header) == first
    status, body = api.request("POST", "/engine", {"data": engine | {"name": unique("engine")}}, headers=header)
    assert status == 422 and "Idempotency-Key" in body["error_message"]


def test_a_nested_action_create_with_a_reused_key_and_another_body_is_a_422(
        editors: tuple[Api, Api], datastore: dict[str, Any]) -> None:
    ann, bob = editors
    header = {"Idempotency-Key": unique("k")}
    path = f"/datastore/{datastore['id']}/action"

    def action(name: str) -> dict[str, Any]:
        return {"data": {"name": name, "action_type_name": "fake_action_that_succeeds",
                         "engine_name": "no_op_engine"}}

    one = ann.post(path, [action("a1")], headers=header)
    assert ann.post(path, [action("a1")], headers=header) == one
    status, body = ann.request("POST", path, [action("a1"), action("a2")], headers=header)
    assert status == 422 and "Idempotency-Key" in body["error_message"]
    status, body = ann.request("POST", path, [action("a1-renamed")], headers=header)
    assert status == 422 and "Idempotency-Key" in body["error_message"]
    assert [a["id"] for a in bob.post(path, [action("a1")], headers=header)] != [a["id"] for a in one]


def test_two_callers_with_one_key_trigger_two_runs(dart: InProcessDart, datastore: dict[str, Any]) -> None:
    workflow = dart.api.post(f"/datastore/{datastore['id']}/workflow",
                             {"data": {"name": unique("wf"), "concurrency": 5}})
    dart.api.patch(f"/workflow/{workflow['id']}", [{"op": "replace", "path": "/data/state", "value": "ACTIVE"}])
    ops = [dart.api.as_key(*create_api_key(dart.store, f"op{n}@example.com", "operator")) for n in range(2)]
    header = {"Idempotency-Key": unique("k")}
    runs = [op.request("POST", f"/workflow/{workflow['id']}/do-manual-trigger", headers=header)[1] for op in ops]
    status, again = ops[0].request("POST", f"/workflow/{workflow['id']}/do-manual-trigger", headers=header)
    assert len({r["workflow_instance_id"] for r in runs}) == 2
    assert status == 200 and again["workflow_instance_id"] == runs[0]["workflow_instance_id"]
    assert len(dart.api.get(f"/workflow/{workflow['id']}/instance")) == 2
