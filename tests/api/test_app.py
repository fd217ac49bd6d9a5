"""The application as a whole, in-process: one route table (probes and documents included, open without a
key), errors mapped once to the original's envelope, the dataset guess as an injected collaborator, and the
schema cache the composition root hands in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.api.listing import SchemaCache
from services.api.routes import OPEN_PATHS, ROUTES
from tests.api.conftest import ADMIN_USER, Api, GuessCalls, InProcessDart, start


def test_every_route_of_the_table_is_mounted_and_only_the_open_ones_need_no_key(dart: InProcessDart) -> None:
    anonymous = dart.api.as_key(None)
    for route in ROUTES:
        path = route.full_path.replace("{entity_id}", "NOSUCHID99").replace("{engine_name}", "nope") \
            .replace("{action_name}", "nope")
        method = next(iter(route.methods))
        status = anonymous.client.simulate_request(method, path).status_code
        if route.open:
            assert status == 200, (method, path, status)
        else:
            assert status == 401, (method, path, status)  # mounted: an unknown path would be a 404
    assert OPEN_PATHS == {"/health", "/ready", "/metrics", "/api/1/openapi.json", "/api/1/swagger.json"}


def test_probes_answer_without_a_key_and_take_any_query(dart: InProcessDart) -> None:
    anonymous = dart.api.as_key(None)
    assert anonymous.request("GET", "/health", params={"x": "1"}) == (200, {"status": "ok"})
    status, ready = anonymous.request("GET", "/ready")
    assert status == 200 and ready["ready"] is True and ready["store"] == "ok"
    assert ready["head_position"] >= 1 and "stats.event_type_counts" in ready["projection_lag"]


def test_metrics_are_open_and_count_requests(dart: InProcessDart, api: Api) -> None:
    api.get("/engine")
    text = dart.api.as_key(None).client.simulate_get("/metrics").text
    assert 'dart_http_requests_total{method="GET",status="200"}' in text
    assert "dart_log_head_position" in text and 'projection="stats.event_type_counts"' in text


def test_the_openapi_document_lists_the_table_and_is_open(dart: InProcessDart) -> None:
    anonymous = dart.api.as_key(None)
    document = anonymous.client.simulate_get("/api/1/openapi.json").json
    assert anonymous.client.simulate_get("/api/1/swagger.json").json["paths"] == document["paths"]
    documented = {r.full_path for r in ROUTES if r.documented}
    assert set(document["paths"]) == documented
    assert "/api/1/workflow/{entity_id}/do-manual-trigger" in documented  # the manual trigger is in the table
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "/metrics" not in document["paths"] and "/api/1/openapi.json" not in document["paths"]


def test_unknown_paths_wrong_methods_and_unknown_queries_are_refused_in_the_envelope(api: Api) -> None:
    status, body = api.request("GET", "/no/such/path")
    assert status == 404 and body["results"] == "ERROR"
    status, body = api.request("PATCH", "/engine/X", [])
    assert status == 405 and body["results"] == "ERROR"  # engines are replaced, never patched
    allowed = api.client.simulate_request("PATCH", "/api/1/engine/X", headers={"Authorization": api.authorization or ""})
    assert set(allowed.headers["Allow"].replace(" ", "").split(",")) == {"GET", "PUT", "DELETE", "OPTIONS"}
    status, body = api.request("GET", "/engine", params={"colour": "red"})
    assert status == 400 and "colour" in body["error_message"]
    status, body = api.request("POST", "/event", raw=b"{not json")
    assert status == 400 and "JSON" in body["error_message"]


class RaisingGuess(GuessCalls):
    def __call__(self, s3_path: str | None, max_lines: int, user_id: str) -> dict[str, Any]:
        raise RuntimeError("an adapter bug")


def test_an_unexpected_error_is_a_500_in_the_envelope_without_details(tmp_path: Path) -> None:
    broken = start(tmp_path / "home", RaisingGuess())
    try:
        status, body = broken.api.request("GET", "/dataset/guess", params={"s3_path": "s3://bucket/p"})
    finally:
        broken.store.close()
    assert status == 500 and body["results"] == "ERROR" and "adapter bug" not in body["error_message"]


def test_the_dataset_guess_goes_to_the_injected_guesser_after_the_path_is_checked(dart: InProcessDart) -> None:
    dart.guess.calls.clear()
    status, body = dart.api.request("GET", "/dataset/guess", params={"s3_path": "nope"})
    assert status == 400 and "s3_path" in body["error_message"]
    status, body = dart.api.request("GET", "/dataset/guess", params={"s3_path": "s3://bucket/p", "max_lines": 0})
    assert status == 400 and "max_lines" in body["error_message"]
    assert dart.guess.calls == []  # refused before any S3 call
    guessed = dart.api.get("/dataset/guess", params={"s3_path": "s3://bucket/orders/", "max_lines": 7})
    expected = {"name": "guessed", "location": "s3://bucket/orders/", "user_id": ADMIN_USER}
    assert {k: v for k, v in guessed["data"].items() if k in expected} == expected
    # shaped as a stored dataset is served (issue 11): every other field is an unset nullable one, as null
    assert set(guessed) == {"data"} and all(v is None for k, v in guessed["data"].items() if k not in expected)
    assert dart.guess.calls == [("s3://bucket/orders/", 7, ADMIN_USER)]
    dart.api.get("/dataset/guess", params={"s3_path": "s3://bucket/orders/"})
    assert dart.guess.calls[-1][1] == 100  # the default max_lines


def test_the_schema_cache_keeps_a_kinds_schemas_for_its_ttl() -> None:
    now = [0.0]
    cache = SchemaCache(seconds=5.0, timer=lambda: now[0])
    computed: list[str] = []

    def compute(tag: str) -> list[dict[str, Any]]:
        computed.append(tag)
        return [{"title": tag}]

    assert cache.get("action", lambda: compute("a1")) == [{"title": "a1"}]
    now[0] = 4.9
    assert cache.get("action", lambda: compute("a2")) == [{"title": "a1"}]
    assert cache.get("datastore", lambda: compute("d1")) == [{"title": "d1"}]
    now[0] = 5.1
    assert cache.get("action", lambda: compute("a3")) == [{"title": "a3"}]
    assert computed == ["a1", "d1", "a3"]


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_the_probes_are_documented_without_security(dart: InProcessDart, path: str) -> None:
    document = dart.api.as_key(None).client.simulate_get("/api/1/openapi.json").json
    assert document["paths"][path]["get"]["operationId"] == path.strip("/")
