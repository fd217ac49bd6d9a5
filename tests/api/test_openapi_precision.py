"""The OpenAPI document says precisely what the server accepts (issue 11: 0 documented-valid requests
refused): ``filters``, ``order_by``, ``as_of`` and an API key's ``expires`` are patterns the server's
parsers accept whatever matches; the registered engines name the datastore and action bodies; an integer
written 2.0 is the integer 2; NUL, which no store holds, is outside every documented string."""

from __future__ import annotations

import copy
import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

from engines.no_op.definition import NO_OP_ENGINE
from services.api.openapi_params import CRON, MAX_DOCUMENTED_FILTERS, filter_keys, future_time_pattern
from services.domain.cron import validate_cron_args
from tests.api.conftest import Api, unique

EXAMPLES = {  # a value for each way the server compares a key, and the operators the document allows on it
    "text": [("=", "a"), ("LIKE", "%x%"), ("~", "ab"), ("IN", "a,b"), ("<", "m"), ("NOT_LIKE", "z%")],
    "numeric": [(">=", "-1.5"), ("IN", "1,2,3"), ("=", "0")],
    "boolean": [("=", "true"), ("IN", "false")],
    "timestamp": [("<", "2030-01-01T00:00:00Z"), (">=", "1999-12-28T23:59:59.5+13:30")],
}
LISTS = {
    "/engine": "engine",
    "/dataset": "dataset",
    "/datastore": "datastore",
    "/action": "action",
    "/workflow": "workflow",
    "/workflow/instance": "workflow_instance",
    "/trigger": "trigger",
    "/subscription": "subscription",
    "/event": "event",
}


def _document(api: Api) -> dict[str, Any]:
    status, document = api.request("GET", "/openapi.json")
    assert status == 200
    return document


def _query_schema(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    parameters = document["paths"][f"/api/1{path}"]["get"]["parameters"]
    return next(p["schema"] for p in parameters if p["name"] == name)


def test_every_documented_filter_shape_is_a_filter_every_list_accepts(api: Api) -> None:
    document = _document(api)
    checked = 0
    for path, category in LISTS.items():
        pattern = re.compile(_query_schema(document, path, "filters")["pattern"])
        items = [
            f"{key} {op} {value}"
            for kind, keys in filter_keys(category).items()
            if kind != "arrays"
            for key in keys
            for op, value in EXAMPLES[kind]
        ]
        for start in range(0, len(items), MAX_DOCUMENTED_FILTERS):
            value = json.dumps(items[start : start + MAX_DOCUMENTED_FILTERS], separators=(",", ":"))
            assert pattern.search(value), (path, value)
            status, body = api.request("GET", path, params={"filters": value})
            assert status == 200, (path, value, body)
            checked += 1
        # what the grammar refuses, the pattern refuses too
        for refused in ('["name"]', '["name = a b"]', '["created < yesterday"]', '"name = a"', '["x" = 1]'):
            assert not pattern.search(refused), (path, refused)
            assert api.request("GET", path, params={"filters": refused})[0] == 400, (path, refused)
    assert checked >= 30


def test_documented_order_by_keys_are_accepted_and_array_keys_left_out(api: Api) -> None:
    pattern = re.compile(_query_schema(_document(api), "/action", "order_by")["pattern"])
    assert pattern.search('["name ASC","order_idx DESC","created"]')
    assert (
        api.request("GET", "/action", params={"order_by": '["name ASC","order_idx DESC","created"]'})[0]
        == 200
    )
    assert (
        "tags" in filter_keys("action")["arrays"]
    )  # ordering through an array is refused, so not documented
    assert (
        not pattern.search('["tags ASC"]')
        and api.request("GET", "/action", params={"order_by": '["tags"]'})[0] == 400
    )


def test_as_of_pattern_matches_what_the_server_reads(api: Api) -> None:
    event = api.post("/event", {"data": {"name": unique("as-of")}})
    pattern = re.compile(_query_schema(_document(api), "/event/{entity_id}", "as_of")["pattern"])
    for value in ("0", "999999999999999999", "2999-01-28T00:00:00Z", "1000-01-01T00:00:00.123456-13:59"):
        assert pattern.search(value)
        assert api.request("GET", f"/event/{event['id']}", params={"as_of": value})[0] in (200, 404), value
    assert not pattern.search("01")  # read as 1 by the server; the document promises less than it reads
    for value in ("²", "-1", "yesterday", "2020-01-01", "0001-01-01T00:00:00+01:00", "2020-01-01T00:00:00"):
        assert not pattern.search(value), value
        assert api.request("GET", f"/event/{event['id']}", params={"as_of": value})[0] == 400, value


def test_an_expiry_the_document_allows_is_one_the_server_takes(api: Api) -> None:
    pattern = re.compile(future_time_pattern())
    next_year = datetime.now(UTC).year + 1
    assert pattern.search(f"{next_year}-01-01T00:00:00Z") and pattern.search("8999-12-28T23:59:59+13:59")
    assert not pattern.search(f"{next_year - 2}-06-01T00:00:00Z") and not pattern.search(
        "9999-12-31T23:59:59Z"
    )
    document = _document(api)
    schema = document["paths"]["/api/1/api_key"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert schema["properties"]["data"]["properties"]["expires"]["anyOf"][0]["pattern"] == pattern.pattern
    assert schema["additionalProperties"] is False
    key = api.post(
        "/api_key",
        {"data": {"user_id": "exp@example.com", "role": "viewer", "expires": "8999-12-28T23:59:59+13:59"}},
    )
    assert key["expires"].startswith("8999-12-28")


def test_registered_engines_name_the_datastore_and_action_bodies(api: Api) -> None:
    if not any(e["data"]["name"] == NO_OP_ENGINE["name"] for e in api.get("/engine", params={"limit": 1000})):
        api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    paths = _document(api)["paths"]
    body = paths["/api/1/datastore"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    [no_op] = [
        alt
        for alt in body["properties"]["data"]["anyOf"]
        if alt["properties"]["engine_name"] == {"const": NO_OP_ENGINE["name"]}
    ]
    assert "engine_name" in no_op["required"]
    assert no_op["properties"]["args"]["properties"].keys() == {"action_sleep_time_in_seconds"}
    action = paths["/api/1/datastore/{entity_id}/action"]["post"]["requestBody"]["content"][
        "application/json"
    ]
    names = {
        alt["properties"]["data"]["anyOf"][i]["properties"]["action_type_name"]["const"]
        for alt in action["schema"]["oneOf"][:1]
        for i in range(len(alt["properties"]["data"]["anyOf"]))
    }
    assert {t["name"] for t in NO_OP_ENGINE["supported_action_types"]} <= names
    engine_names = next(p for p in paths["/api/1/schema/engine/{engine_name}/datastore"]["get"]["parameters"])
    assert NO_OP_ENGINE["name"] in engine_names["schema"]["enum"]
    # The integer 2 written 2.0 (the same JSON number) is taken, and stored as 2
    created = api.post(
        "/datastore",
        {
            "data": {
                "name": unique("ds"),
                "engine_name": NO_OP_ENGINE["name"],
                "concurrency": 2.0,
                "args": {"action_sleep_time_in_seconds": 1.0},
            }
        },
    )
    assert created["data"]["concurrency"] == 2 and isinstance(created["data"]["concurrency"], int)


def test_documented_strings_exclude_nul_which_the_server_refuses(api: Api) -> None:
    paths = _document(api)["paths"]
    [entity_id] = paths["/api/1/event/{entity_id}"]["get"]["parameters"][:1]
    assert not re.search(entity_id["schema"]["pattern"], "a\x00b")
    body = paths["/api/1/event"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    data = body["properties"]["data"]
    assert not re.search(data["propertyNames"]["pattern"], "k\x00") and re.search(
        data["propertyNames"]["pattern"], "k"
    )
    status, answer = api.request("POST", "/event", {"data": {"name": unique("nul"), "description": "a\x00b"}})
    assert status == 400 and "NUL" in answer["error_message"]
    assert data["properties"]["description"]["maxLength"] == 16384


def test_every_cron_pattern_the_document_allows_fires() -> None:
    fields = [
        ("*", "0", "59"),
        ("*", "0", "23"),
        ("*", "1", "28", "31"),
        ("*", "1", "2", "12"),
        ("*", "0", "6"),
    ]
    matched = 0
    for pattern in (" ".join(combo) for combo in itertools.product(*fields)):
        if re.search(CRON, pattern):
            validate_cron_args({"cron_pattern": pattern})  # raises CronError ("never fires", ...) otherwise
            matched += 1
    assert matched > 100 and not re.search(CRON, "* 22 31 11 6")  # the 31st of November: never
