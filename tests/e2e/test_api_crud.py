"""The original's CRUD acceptance tests (reference §15.1) and the extra checks of §15, black-box against a
running dart on SQLite and on PostgreSQL."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE
from bench.harness.api_client import Api


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def engine(api: Api) -> dict[str, Any]:
    found = api.get("/engine", params={"filters": [f"name = {NO_OP_ENGINE['name']}"]})
    if found:
        return found[0]
    return api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})


def datastore_body(state: str = "TEMPLATE", **extra: Any) -> dict[str, Any]:
    return {"data": {"name": unique("ds"), "engine_name": "no_op_engine", "state": state,
                     "args": {"action_sleep_time_in_seconds": 0}, **extra}}


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
    fetched = api.get(f"/action/{created[0]['id']}")
    assert {k: v for k, v in fetched["data"].items() if k not in ("state", "queued_time")} == {
        k: v for k, v in created[0]["data"].items() if k not in ("state", "queued_time")
    }
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


def _head(dart: Any) -> int:
    import urllib.request

    with urllib.request.urlopen(dart.base + "/ready", timeout=10) as resp:
        return int(json.loads(resp.read())["head_position"])


def test_bad_requests_are_4xx_naming_the_problem_and_append_nothing(dart: Any, api: Api,
                                                                  engine: dict[str, Any]) -> None:
    datastore = api.post("/datastore", datastore_body(state="INACTIVE"))
    head = _head(dart)
    cases = [
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
    assert _head(dart) == head


def test_missing_or_wrong_key_is_401_naming_the_problem(dart: Any) -> None:
    status, body = dart.api(None, None).request("GET", "/engine")
    assert status == 401 and "Authorization" in body["error_message"]
    status, wrong_secret = dart.api("TESTADMINKEY", "wrong").request("GET", "/engine")
    assert status == 401 and "secret" in wrong_secret["error_message"]
    status, body = dart.api("NOSUCHKEY", "x").request("GET", "/engine")
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


def test_checkout_needs_pending_and_checkin_needs_running(api: Api, engine: dict[str, Any]) -> None:
    datastore = api.post("/datastore", datastore_body(state="INACTIVE"))
    action = api.post(f"/datastore/{datastore['id']}/action", [
        {"data": {"name": "a", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}
    ])[0]
    status, body = api.request("PUT", f"/engine/action/{action['id']}/checkout")
    assert status == 400 and "PENDING" in body["error_message"]
    status, body = api.request("PUT", f"/engine/action/{action['id']}/checkin", {"state": "SUCCESS"})
    assert status == 400 and "RUNNING" in body["error_message"]
    status, body = api.request("PUT", f"/engine/action/{action['id']}/checkin", {"state": "MAYBE"})
    assert status == 400 and "state" in body["error_message"]
    assert api.request("PUT", "/engine/action/NOSUCHACTN/checkout")[0] == 404


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


def test_datastore_secrets_never_enter_the_log_but_reach_the_engine_at_checkout(api: Api) -> None:
    name = unique("secret_engine")
    api.post("/engine", {"data": {
        "name": name, "description": "x",
        "options_json_schema": {"type": "object", "properties": {
            "password": {"type": "string", "x-dart-secret": True}, "user": {"type": "string"}}},
        "supported_action_types": [{"name": "noop", "description": "d", "params_json_schema": None}],
    }})
    secret = "s3cr3t-" + uuid.uuid4().hex
    created = api.post("/datastore", {"data": {"name": unique("ds"), "engine_name": name, "state": "INACTIVE",
                                               "args": {"password": secret, "user": "u"}}})
    assert "password" not in created["data"]["args"] and created["data"]["args"]["user"] == "u"
    log = api.ok("GET", "/log", params={"after": 0, "limit": 10000})
    assert secret not in json.dumps(log)
    assert secret not in json.dumps(api.ok("GET", f"/datastore/{created['id']}/history"))


def test_metrics_are_open_and_count_requests(dart: Any, api: Api) -> None:
    import urllib.request

    api.get("/engine")
    with urllib.request.urlopen(dart.base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'dart_http_requests_total{method="GET",status="200"}' in text
    assert "dart_log_head_position" in text and 'projection="stats.event_type_counts"' in text


def test_two_engines_can_never_both_check_out_one_action(dart: Any, api: Api, engine: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from events.streams.action import ActionPending
    from events.types import NewEvent, StreamAppend
    from services.runtime.settings import load_settings
    from services.runtime.composition import build

    store_row = api.post("/datastore", datastore_body(state="INACTIVE"))
    [action] = api.post(f"/datastore/{store_row['id']}/action", [
        {"data": {"name": "race", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}])
    def queued() -> Any:
        current = api.get(f"/action/{action['id']}")
        return current if current["data"]["state"] == "QUEUED" else None

    deadline = __import__("time").monotonic() + 30
    while (current := queued()) is None and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    assert current is not None, "the orchestrator never queued the action"
    env = {"DART_HOME": str(dart.home)}
    if dart.database_url:
        env["DART_DATABASE_URL"] = dart.database_url
    store = build(load_settings(env=env), migrate=False).store
    store.append(StreamAppend(f"action-{action['id']}", current["version_id"],
                              [NewEvent(ActionPending({"state": "PENDING"}))]))
    store.close()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: api.request("PUT", f"/engine/action/{action['id']}/checkout"), range(8)))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(200) == 1 and statuses.count(400) == 7, statuses
    history = api.ok("GET", f"/action/{action['id']}/history")
    assert [e["type"] for e in history].count("ActionCheckedOut") == 1


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
