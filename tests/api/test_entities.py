"""In-process twins of the HTTP cases of tests/e2e/test_api_crud.py (the original's CRUD acceptance tests,
reference §15.1, and the extra checks of §15): the same requests and assertions through the TestClient."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE
from tests.api.conftest import Api, InProcessDart, unique


@pytest.fixture(scope="module")
def engine(api: Api) -> dict[str, Any]:
    return api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})


def datastore_body(state: str = "TEMPLATE", **extra: Any) -> dict[str, Any]:
    return {"data": {"name": unique("ds"), "engine_name": "no_op_engine", "state": state,
                     "args": {"action_sleep_time_in_seconds": 0}, **extra}}


def head(api: Api) -> int:
    return int(api.request("GET", "/ready")[1]["head_position"])


def test_crud_datastore_actions(api: Api, engine: dict[str, Any]) -> None:
    datastore = api.post("/datastore", datastore_body())
    actions = [
        {"data": {"name": "a0", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}},
        {"data": {"name": "a1", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}},
    ]
    created = api.post(f"/datastore/{datastore['id']}/action", actions)
    assert len(created) == 2
    for sent, got in zip(actions, created):
        assert got["data"]["name"] == sent["data"]["name"]
        assert got["data"]["datastore_id"] == datastore["id"]
        assert got["data"]["args"] == {}
        assert got["data"]["user_id"]
        assert got["data"]["state"] == "HAS_NEVER_RUN"
    assert created[0]["data"]["order_idx"] < created[1]["data"]["order_idx"]
    assert api.get(f"/action/{created[0]['id']}") == created[0]  # no orchestrator here moves it on
    api.delete(f"/action/{created[0]['id']}")
    status, body = api.request("GET", f"/action/{created[0]['id']}")
    assert status == 404 and body["results"] == "ERROR"


def test_crud_workflow_actions(api: Api, engine: dict[str, Any]) -> None:
    datastore = api.post("/datastore", datastore_body())
    workflow = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": unique("wf")}})
    actions = [
        {"data": {"name": "t0", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}},
        {"data": {"name": "t1", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}},
    ]
    created = api.post(f"/workflow/{workflow['id']}/action", actions)
    assert [a["data"]["order_idx"] for a in created] == [0, 1]
    for got in created:
        assert got["data"]["workflow_id"] == workflow["id"]
        assert got["data"]["state"] == "TEMPLATE"
        assert got["data"]["args"] == {}
        assert "datastore_id" not in got["data"] or got["data"]["datastore_id"] is None
    assert api.get(f"/action/{created[1]['id']}") == created[1]
    api.delete(f"/action/{created[1]['id']}")
    assert api.request("GET", f"/action/{created[1]['id']}")[0] == 404


def test_crud_dataset(api: Api) -> None:
    data = {
        "name": unique("dataset"), "table_name": "t", "location": "s3://bucket/prefix/", "load_type": "INSERT",
        "data_format": {"file_format": "PARQUET", "row_format": "NONE"},
        "columns": [{"name": "a", "data_type": "STRING"}, {"name": "b", "data_type": "INT"}],
        "compression": "NONE", "tags": ["foo"],
    }
    created = api.post("/dataset", {"data": data})
    assert created["data"]["location"] == "s3://bucket/prefix"  # trailing slash stripped
    assert created["data"]["tags"] == ["foo"] and created["data"]["name"] == data["name"]
    assert api.get(f"/dataset/{created['id']}") == created
    changed = copy.deepcopy(created)
    changed["data"]["compression"] = "GZIP"
    updated = api.put(f"/dataset/{created['id']}", changed)
    assert updated["data"]["compression"] == "GZIP" and updated != created
    status, body = api.request("POST", "/dataset", {"data": data})
    assert status == 400 and "already exists" in body["error_message"]
    api.delete(f"/dataset/{created['id']}")
    assert api.request("GET", f"/dataset/{created['id']}")[0] == 404


def test_crud_datastore(api: Api, engine: dict[str, Any]) -> None:
    sent = datastore_body(state="INACTIVE")
    created = api.post("/datastore", sent)
    for key, value in sent["data"].items():
        assert created["data"][key] == value
    assert created["data"]["s3_artifacts_path"].endswith(f"/artifacts/{created['id']}")
    assert created["data"]["s3_logs_path"].endswith(f"/logs/{created['id']}")
    assert api.get(f"/datastore/{created['id']}") == created
    changed = copy.deepcopy(created)
    changed["data"]["engine_name"] = "not_existing_engine"
    changed["data"]["state"] = "ACTIVE"
    updated = api.put(f"/datastore/{created['id']}", changed)
    assert updated["data"]["engine_name"] == "no_op_engine"
    assert updated["data"]["state"] == "ACTIVE"
    api.delete(f"/datastore/{created['id']}")
    assert api.request("GET", f"/datastore/{created['id']}")[0] == 404


def test_crud_trigger(api: Api, engine: dict[str, Any]) -> None:
    datastore = api.post("/datastore", datastore_body())
    workflow = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": unique("wf")}})
    then = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": unique("wf")}})  # not a loop
    sent = {"name": unique("trigger"), "trigger_type_name": "workflow_completion",
            "args": {"completed_workflow_id": workflow["id"]}, "workflow_ids": [then["id"]], "tags": ["x"]}
    created = api.post("/trigger", {"data": sent})
    for key, value in sent.items():
        if key != "tags":
            assert created["data"][key] == value
    assert created["data"]["tags"][0] == "x" and len(created["data"]["tags"]) == 2  # a uuid tag is appended
    assert api.get(f"/trigger/{created['id']}") == created
    api.delete(f"/trigger/{created['id']}")
    assert api.request("GET", f"/trigger/{created['id']}")[0] == 404


def test_crud_workflow(api: Api, engine: dict[str, Any]) -> None:
    datastore = api.post("/datastore", datastore_body(state="ACTIVE"))
    sent = {"name": unique("wf"), "concurrency": 1}
    created = api.post(f"/datastore/{datastore['id']}/workflow", {"data": sent})
    assert created["data"]["engine_name"] == "no_op_engine"
    assert created["data"]["datastore_id"] == datastore["id"]
    assert api.get(f"/workflow/{created['id']}") == created
    changed = copy.deepcopy(created)
    changed["data"]["concurrency"] = 2
    changed["data"]["state"] = "ACTIVE"
    changed.pop("version_id")
    updated = api.put(f"/workflow/{created['id']}", changed)
    assert updated["data"]["concurrency"] == 2 and updated["data"]["state"] == "ACTIVE"
    api.delete(f"/workflow/{created['id']}")
    assert api.request("GET", f"/workflow/{created['id']}")[0] == 404


def test_changing_a_template_datastores_state_is_refused(api: Api, engine: dict[str, Any]) -> None:
    created = api.post("/datastore", datastore_body(state="TEMPLATE"))
    changed = copy.deepcopy(created)
    changed["data"]["state"] = "ACTIVE"
    changed.pop("version_id")
    status, body = api.request("PUT", f"/datastore/{created['id']}", changed)
    assert status == 400 and "TEMPLATE" in body["error_message"]
    assert api.get(f"/datastore/{created['id']}")["data"]["state"] == "TEMPLATE"


def test_bad_requests_are_4xx_naming_the_problem_and_append_nothing(api: Api, engine: dict[str, Any]) -> None:
    datastore = api.post("/datastore", datastore_body(state="INACTIVE"))
    before = head(api)
    cases: list[tuple[str, str, Any, bytes | None, int, str]] = [
        ("POST", "/datastore", {"data": {**datastore_body()["data"], "colour": "red"}}, None, 400, "colour"),
        ("POST", "/datastore", {**datastore_body(), "extra": 1}, None, 400, "extra"),
        ("POST", "/datastore", None, b"{not json", 400, "JSON"),
        ("POST", "/datastore", [1, 2], None, 400, "body"),
        ("POST", "/datastore", {"data": {**datastore_body()["data"], "concurrency": 11}}, None, 400, "concurrency"),
        ("POST", "/datastore", {"data": {**datastore_body()["data"], "concurrency": "2"}}, None, 400, "concurrency"),
        ("POST", "/datastore", {"data": {**datastore_body()["data"], "engine_name": "nope"}}, None, 400, "engine"),
        ("PUT", f"/datastore/{datastore['id']}", {"data": {**datastore["data"], "state": "NOPE"}}, None, 400,
         "state"),
        ("PATCH", f"/datastore/{datastore['id']}", [{"op": "replace", "path": "/data/nope", "value": 1}], None,
         400, "nope"),
        ("PATCH", f"/datastore/{datastore['id']}", {"op": "replace"}, None, 400, "JSON Patch"),
        ("PUT", "/datastore/NOSUCHID99", {"data": {}}, None, 404, "NOSUCHID99"),
        ("DELETE", "/workflow/NOSUCHID99", None, None, 404, "NOSUCHID99"),
        ("POST", f"/datastore/{datastore['id']}/action", [{"data": {"name": "a", "action_type_name": "nope",
                                                                     "engine_name": "no_op_engine"}}], None, 400,
         "unknown action"),
        ("POST", "/trigger", {"data": {"name": "t", "trigger_type_name": "scheduled", "args": {}}}, None, 400,
         "cron_pattern"),
    ]
    for method, path, body, raw, status, words in cases:
        got, result = api.request(method, path, body, raw=raw)
        assert got == status, (method, path, result)
        assert words in result["error_message"], (method, path, result)
    status, result = api.request("GET", "/action", params={"filters": ["order_idx > many"]})
    assert status == 400 and "order_idx" in result["error_message"]
    status, result = api.request("GET", "/action", params={"nope": "1"})
    assert status == 400 and "nope" in result["error_message"]
    assert head(api) == before


def test_missing_or_wrong_key_is_401_naming_the_problem(dart: InProcessDart) -> None:
    status, body = dart.api.as_key(None).request("GET", "/engine")
    assert status == 401 and "Authorization" in body["error_message"]
    assert body["restults"] == "Error"  # the original's body, typo included
    status, wrong_secret = dart.api.as_key(dart.key, "wrong").request("GET", "/engine")
    assert status == 401 and "secret" in wrong_secret["error_message"]
    status, body = dart.api.as_key("NOSUCHKEY", "x").request("GET", "/engine")
    assert status == 401 and body == wrong_secret  # issue 11: an answer never tells an unknown key apart


def test_history_and_as_of_give_the_state_after_each_event(api: Api, engine: dict[str, Any]) -> None:
    created = api.post("/datastore", datastore_body(state="INACTIVE"))
    versions = []
    for i in range(10):
        current = api.get(f"/datastore/{created['id']}")
        current["data"]["concurrency"] = (i % 10) + 1
        current["data"]["tags"] = [f"t{i}"]
        current.pop("version_id")
        versions.append(api.put(f"/datastore/{created['id']}", current))
    history = api.ok("GET", f"/datastore/{created['id']}/history", params={"limit": 100})
    assert [e["stream_version"] for e in history] == list(range(1, 12))
    assert history[0]["metadata"]["actor"]
    for event, expected in zip(history[1:], versions):
        then = api.get(f"/datastore/{created['id']}", params={"as_of": event["global_position"]})
        assert then["data"] == expected["data"]
        assert then["version_id"] == event["stream_version"]
    first = api.get(f"/datastore/{created['id']}", params={"as_of": history[0]["global_position"]})
    assert first["data"]["concurrency"] == created["data"]["concurrency"]
    status, _ = api.request("GET", f"/datastore/{created['id']}", params={"as_of": history[0]["global_position"] - 1})
    assert status == 404


def test_put_with_a_stale_version_id_is_a_409(api: Api, engine: dict[str, Any]) -> None:
    created = api.post("/datastore", datastore_body(state="INACTIVE"))
    first = copy.deepcopy(created)
    first["data"]["concurrency"] = 2
    api.put(f"/datastore/{created['id']}", first)
    stale = copy.deepcopy(created)
    stale["data"]["concurrency"] = 3
    status, body = api.request("PUT", f"/datastore/{created['id']}", stale)
    assert status == 409 and "version" in body["error_message"]
    assert api.get(f"/datastore/{created['id']}")["data"]["concurrency"] == 2


def test_filters_and_paging(api: Api, engine: dict[str, Any]) -> None:
    tag = uuid.uuid4().hex[:10]
    ids = [api.post("/event", {"data": {"name": unique("ev"), "tags": [tag], "state": s}})["id"]
           for s in ("ACTIVE", "INACTIVE", "ACTIVE")]
    status, page = api.request("GET", "/event", params={"filters": [f"tags = {tag}", "state = ACTIVE"], "limit": 1})
    assert status == 200 and page["total"] == 2 and len(page["results"]) == 1 and page["limit"] == 1
    assert {page["results"][0]["id"]} <= {ids[0], ids[2]}
    status, body = api.request("GET", "/event", params={"filters": ["state === ACTIVE"]})
    assert status == 400 and "filter" in body["error_message"]
    status, body = api.request("GET", "/event", params={"limit": "many"})
    assert status == 400 and "limit" in body["error_message"]


def test_trigger_types_list_every_type_but_manual(api: Api) -> None:
    names = {t["name"] for t in api.get("/trigger_type", params={"limit": 100})}
    assert "manual" not in names
    assert {"retry", "scheduled", "workflow_completion", "event", "subscription_batch", "super"} <= names
    status, body = api.request("POST", "/trigger", {"data": {"name": "m", "trigger_type_name": "manual"}})
    assert status == 400 and "manual" in body["error_message"]


def test_schema_endpoints_describe_each_entity_and_refuse_unknown_names(api: Api, engine: dict[str, Any]) -> None:
    workflow = api.get("/schema/workflow")
    assert workflow["properties"]["data"]["properties"]["state"]["enum"]
    datastore = api.get("/schema/engine/no_op_engine/datastore")
    assert "action_sleep_time_in_seconds" in datastore["properties"]["data"]["properties"]["args"]["properties"]
    copy_type = api.get("/schema/action/fake_copy_hdfs_to_s3", params={"engine_name": "no_op_engine"})
    assert "destination_s3_path" in copy_type["properties"]["data"]["properties"]["args"]["properties"]
    status, body = api.request("GET", "/schema/action/fake_copy_hdfs_to_s3")
    assert status == 400 and "engine_name" in body["error_message"]
    status, body = api.request("GET", "/schema/action/nope", params={"engine_name": "no_op_engine"})
    assert status == 400 and "nope" in body["error_message"]
    scheduled = api.get("/schema/trigger", params={"trigger_type_name": "scheduled"})
    assert "cron_pattern" in scheduled["properties"]["data"]["properties"]["args"]["properties"]
    assert api.get("/schema/dataset/guess")["required"] == ["s3_path"]


def test_log_filters_by_several_types_and_streams(api: Api) -> None:
    created = api.post("/event", {"data": {"name": unique("ev")}})
    changed = copy.deepcopy(created)
    changed["data"]["description"] = "changed"
    api.put(f"/event/{created['id']}", changed)
    status, page = api.request("GET", "/log", params={"type": "EventCreated,EventUpdated",
                                                      "stream": f"event-{created['id']}"})
    assert status == 200 and [e["type"] for e in page["results"]] == ["EventCreated", "EventUpdated"]
    assert page["next_after"] == page["results"][-1]["global_position"]


def test_a_scheduled_trigger_with_a_bad_cron_pattern_is_refused_naming_it(api: Api) -> None:
    for pattern, words in (("0 12 * * 2 *", "?"), ("0 12 ? * 9 *", "day-of-week"), ("nope", "fields")):
        status, body = api.request("POST", "/trigger", {"data": {
            "name": unique("t"), "trigger_type_name": "scheduled", "args": {"cron_pattern": pattern}}})
        assert status == 400 and "cron_pattern" in body["error_message"] and words in body["error_message"], body
    ok = api.post("/trigger", {"data": {"name": unique("t"), "trigger_type_name": "scheduled",
                                        "args": {"cron_pattern": "0 12 ? * 2 *"}}})
    assert ok["data"]["args"]["cron_pattern"] == "0 12 ? * 2 *"


def test_the_manual_trigger_starts_an_active_workflow_and_refuses_an_inactive_one(api: Api,
                                                                                  engine: dict[str, Any]) -> None:
    datastore = api.post("/datastore", datastore_body(state="INACTIVE"))
    workflow = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": unique("wf")}})
    status, body = api.request("POST", f"/workflow/{workflow['id']}/do-manual-trigger")
    assert status == 400 and body["results"] == "ERROR" and "ACTIVE" in body["error_message"]
    current = api.get(f"/workflow/{workflow['id']}")
    current["data"]["state"] = "ACTIVE"
    current.pop("version_id")
    api.put(f"/workflow/{workflow['id']}", current)
    status, body = api.request("POST", f"/workflow/{workflow['id']}/do-manual-trigger",
                               headers={"Idempotency-Key": "once"})
    assert status == 200 and body["results"] == "OK" and body["workflow_instance_id"]
    instances = api.get(f"/workflow/{workflow['id']}/instance")
    assert [i["id"] for i in instances] == [body["workflow_instance_id"]]
    assert api.request("POST", "/workflow/NOSUCHWF99/do-manual-trigger")[0] == 404
