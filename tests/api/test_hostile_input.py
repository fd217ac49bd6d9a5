"""Hostile and careless input (issue 11, findings 9, 10, 11 and 14): each a 4xx naming the field or parameter,
never a 500, on SQLite and on PostgreSQL; and a stored entity never breaks the lists that follow."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import falcon.testing
import pytest

from bench.harness import pg
from engines.no_op.definition import NO_OP_ENGINE
from services.api.app import create_app
from services.api.listing import SchemaCache
from services.commands.auth import authenticate, create_api_key
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.runtime.composition import build
from services.runtime.settings import load_settings
from tests.api.conftest import ADMIN_USER, Api, GuessCalls, basic, unique
from tests.support.stores import BACKENDS

LIMIT = 100 * 1024  # the body limit these apps get (the default is 1 MiB)


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app over SQLite, then over a fresh PostgreSQL database, with the no_op engine registered."""
    home = tmp_path_factory.mktemp(f"hostile-{request.param}")
    env = {"DART_HOME": str(home)}
    with _database(request.param) as url:
        if url:
            env["DART_DATABASE_URL"] = url
        container = build(load_settings(env=env))
        try:
            store = container.store
            app = create_app(
                entities=EntityService(store, container), authenticate=partial(authenticate, store),
                orchestration=Orchestration(store, container.settings.s3_datastores_root),
                projections=container.projections, secrets=container.secrets, guess_dataset=GuessCalls(),
                schema_cache=SchemaCache(), max_body_bytes=LIMIT,
            )
            key, secret = create_api_key(store, ADMIN_USER, "admin")
            client = Api(falcon.testing.TestClient(app), basic(key, secret))
            client.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
            yield client
        finally:
            container.store.close()


class _database:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.context: Any = None

    def __enter__(self) -> str | None:
        if self.backend != "postgres":
            return None
        server = pg.server_url_from_env()
        if server is None:
            pytest.skip(pg.SKIP_REASON)
        self.context = pg.temporary_database(server)
        return str(self.context.__enter__())

    def __exit__(self, *exc: object) -> None:
        if self.context is not None:
            self.context.__exit__(*exc)


def datastore(api: Api) -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": unique("ds"), "engine_name": "no_op_engine",
                                            "state": "INACTIVE", "args": {"action_sleep_time_in_seconds": 0}}})


def raw_action(name: str, order_idx: str) -> bytes:
    return ('[{"data": {"name": "' + name + '", "action_type_name": "fake_action_that_succeeds", '
            '"engine_name": "no_op_engine", "order_idx": ' + order_idx + '}}]').encode()


def error(api: Api, method: str, path: str, status: int = 400, **kw: Any) -> str:
    got, body = api.request(method, path, **kw)
    assert got == status, (method, path, kw.get("params"), got, body)
    assert body["results"] == "ERROR"
    return str(body["error_message"])


# ------------------------------------------------------------------------------------------------ bodies
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_a_non_finite_number_in_a_body_is_a_400_naming_the_field_and_lists_keep_working(
        api: Api, number: str) -> None:
    store = datastore(api)
    message = error(api, "POST", f"/datastore/{store['id']}/action", raw=raw_action("a", number))
    assert message.startswith("[0].data.order_idx:") and number in message
    patch = '[{"op": "replace", "path": "/data/description", "value": {"x": [' + number + ']}}]'
    message = error(api, "PATCH", f"/datastore/{store['id']}", raw=patch.encode())
    assert message.startswith("[0].value.x[0]:")
    api.post(f"/datastore/{store['id']}/action", None, raw=raw_action("b", "1.5"))
    found = api.get("/action", params={"filters": ["order_idx > 1", f"datastore_id = {store['id']}"]})
    assert [a["data"]["name"] for a in found] == ["b"]


def test_json_nested_past_the_limit_is_a_400_not_a_recursion_error(api: Api) -> None:
    store = datastore(api)
    for depth in (150, 600, 20000):
        deep = "[" * depth + "]" * depth
        body = '{"data": {"name": "x", "extra": ' + deep + '}}'
        assert "nested deeper than 100" in error(api, "POST", "/datastore", raw=body.encode())
        patch = '[{"op": "add", "path": "/data/description", "value": ' + deep + '}]'
        message = error(api, "PATCH", f"/datastore/{store['id']}", raw=patch.encode())
        assert "nested deeper than 100" in message
    # Ninety-odd levels are still fine where the schema allows an object.
    nested = "{}"
    for _ in range(90):
        nested = '{"a": ' + nested + '}'
    patch = '[{"op": "add", "path": "/data/args/deep", "value": ' + nested + '}]'
    status, _ = api.request("PATCH", f"/datastore/{store['id']}", raw=patch.encode())
    assert status in (200, 400)  # the engine's options schema decides; what matters is not a 500


def test_a_lone_surrogate_in_a_body_is_a_400_naming_the_field(api: Api) -> None:
    store = datastore(api)
    raw = b'[{"op": "replace", "path": "/data/description", "value": "a\\ud800b"}]'
    assert error(api, "PATCH", f"/datastore/{store['id']}", raw=raw).startswith("[0].value:")
    raw = b'{"data": {"name": "x", "engine_name": "no_op_engine", "args": {"\\udfff": 1}}}'
    assert "data.args: contains a lone surrogate" in error(api, "POST", "/datastore", raw=raw)
    assert "not UTF-8" in error(api, "POST", "/datastore", raw=b'{"data": {"name": "\xed\xa0\x80"}}')


def test_a_body_past_the_limit_is_a_413_before_it_is_parsed(api: Api) -> None:
    big = json.dumps({"data": {"name": "x", "description": "y" * LIMIT}}).encode()
    assert "DART_MAX_BODY_BYTES" in error(api, "POST", "/datastore", 413, raw=big)
    # A chunked body (no Content-Length) is read only up to the limit.
    message = error(api, "POST", "/datastore", 413, raw=big,
                    headers={"Transfer-Encoding": "chunked", "Content-Length": ""})
    assert str(LIMIT) in message
    small = json.dumps({"data": {"name": unique("ds"), "engine_name": "no_op_engine", "state": "INACTIVE",
                                 "args": {}}})
    status, body = api.request("POST", "/datastore", raw=small.encode(),
                               headers={"Transfer-Encoding": "chunked", "Content-Length": ""})
    assert status == 200, body


def test_a_body_that_is_not_json_is_a_415(api: Api) -> None:
    error(api, "POST", "/datastore", 415, raw=b"data=1", headers={"Content-Type": "application/x-www-form-urlencoded"})


# ------------------------------------------------------------------------------------------------ params
@pytest.mark.parametrize("value", ["²", "¹", "4¹5", "٣", "1_0", " 1", "99999999999999999999", "x",
                                   "0001-01-01T00:00:00+01:00"])
def test_a_malformed_as_of_is_a_400_naming_it(api: Api, value: str) -> None:
    store = datastore(api)
    assert error(api, "GET", f"/datastore/{store['id']}", params={"as_of": value}).startswith("as_of:")


@pytest.mark.parametrize("pattern", ["0 ¹ * * ? *", "²/5 * * * ? *", "0 0 * * ²", "0 0 ? * 2#¹ *"])
def test_a_cron_pattern_with_superscript_digits_is_a_400_naming_it(api: Api, pattern: str) -> None:
    body = {"data": {"name": unique("t"), "trigger_type_name": "scheduled", "args": {"cron_pattern": pattern}}}
    assert "cron_pattern" in error(api, "POST", "/trigger", body=body)


@pytest.mark.parametrize("filters, words", [
    (["created > 0001-01-01T00:00:00+01:00"], "out of range"),
    (["updated < 9999-12-31T23:59:59-01:00"], "out of range"),
    (["name = a\ud800b"], "lone surrogate"),
    (["concurrency > -1e-999999"], "out of range"),
    (["concurrency < 1e999999"], "out of range"),
    (["concurrency IN 1,1e-400"], "out of range"),
    ([f"name = n{i}" for i in range(1000)], "at most 50 filters"),
    (["id IN " + ",".join(f"i{i}" for i in range(40_000))], "at most 1000 values"),
    (["tags IN " + ",".join(f"t{i}" for i in range(1001))], "at most 1000 values"),
])
def test_a_hostile_filter_is_a_400_naming_filters(api: Api, filters: list[str], words: str) -> None:
    # json.dumps keeps a lone surrogate as its \\ud800 escape, as a client would send it.
    message = error(api, "GET", "/datastore", params={"filters": json.dumps(filters)})
    assert message.startswith("filters:") and words in message


def test_fifty_filters_are_answered(api: Api) -> None:
    store = datastore(api)
    filters = [f"id = {store['id']}"] + [f"name != n{i}" for i in range(49)]
    assert [d["id"] for d in api.get("/datastore", params={"filters": filters})] == [store["id"]]
    assert api.get("/datastore", params={"filters": ["concurrency > -1e-300"], "limit": 1})


@pytest.mark.parametrize("order_by", ["garbage", '["a b c"]', '["name SIDEWAYS"]', '["bad key! ASC"]', "[1]"])
def test_order_by_errors_name_order_by(api: Api, order_by: str) -> None:
    assert error(api, "GET", "/action", params={"order_by": order_by}).startswith("order_by:")


LISTS = ["/engine", "/datastore", "/action", "/workflow/instance", "/trigger_type", "/log"]


@pytest.mark.parametrize("path", LISTS)
def test_limit_zero_is_a_count_on_every_list_and_empty_or_odd_limits_are_400s(api: Api, path: str) -> None:
    status, body = api.request("GET", path, params={"limit": "0"})
    assert status == 200 and body["results"] == [] and body["limit"] == 0
    for value in ("", "²", "-1", "10001", "1.0", "1e3"):
        assert error(api, "GET", path, params={"limit": value}).startswith("limit:")
    assert error(api, "GET", path, params={"offset": ""}).startswith("offset:") if path != "/log" else True


def test_limit_zero_on_history_and_element_lists(api: Api) -> None:
    store = datastore(api)
    status, body = api.request("GET", f"/datastore/{store['id']}/history", params={"limit": "0"})
    assert status == 200 and body["results"] == [] and body["total"] == 1
    assert error(api, "GET", f"/datastore/{store['id']}/history", params={"limit": ""}).startswith("limit:")


# ------------------------------------------------------------------------------------ the document agrees
def integer_parameters(api: Api) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, name, schema) of every documented integer query parameter of a GET."""
    status, document = api.request("GET", "/openapi.json")
    assert status == 200
    for path, operations in document["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("type") == "integer":
                yield path.removeprefix("/api/1").replace("{entity_id}", "NOSUCHID"), parameter["name"], \
                    parameter["schema"]


def test_every_integer_parameter_takes_its_documented_bounds_and_nothing_past_them(api: Api) -> None:
    checked = 0
    for path, name, schema in integer_parameters(api):
        if path == "/dataset/guess":
            continue  # it needs an s3_path first
        low, high = schema["minimum"], schema.get("maximum")
        valid = [low] + ([high] if high is not None else [])
        answers = {value: api.request("GET", path, params={name: str(value)})[0] for value in valid}
        assert set(answers.values()) <= {200, 404}, (path, name, answers)
        if set(answers.values()) == {200}:  # the parameter is read before anything can be a 404
            past = [low - 1] + ([high + 1] if high is not None else [])
            for value in past:
                assert error(api, "GET", path, params={name: str(value)}).startswith(f"{name}:")
            assert error(api, "GET", path, params={name: ""}).startswith(f"{name}:")
            checked += 1
    assert checked >= 10


def test_the_log_operation_says_positions_may_skip_values(api: Api) -> None:
    document = api.request("GET", "/openapi.json")[1]
    assert "gap in global_position is not a lost event" in document["paths"]["/api/1/log"]["get"]["description"]
    assert "413" in document["paths"]["/api/1/engine"]["post"]["responses"]


def test_free_form_fields_are_capped_so_lists_stay_light(api: Api) -> None:
    store = datastore(api)
    path = f"/datastore/{store['id']}"
    big = {"blob": "x" * 70_000}  # under the body limit, over the 64 KiB cap of extra_data and args
    message = error(api, "PATCH", path, body=[{"op": "replace", "path": "/data/extra_data", "value": big}])
    assert message.startswith("data.extra_data:") and "65536" in message
    message = error(api, "PATCH", path, body=[{"op": "add", "path": "/data/args/blob", "value": "x" * 70_000}])
    assert message.startswith("data.args:")
    body = {"data": {"name": unique("e"), "description": "d" * 16_385}}
    assert error(api, "POST", "/event", body=body).startswith("data.description:")
    api.patch(path, [{"op": "replace", "path": "/data/extra_data", "value": {"blob": "x" * 60_000}}])
    assert len(api.get(path)["data"]["extra_data"]["blob"]) == 60_000
