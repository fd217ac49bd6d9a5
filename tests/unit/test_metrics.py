"""The request counters behind ``/metrics`` (services/api/metrics.py), in-process: labels stay bounded
whatever methods clients invent, status codes are counted as sent, and the text exposition is Prometheus'."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest
from prometheus_client import generate_latest

from services.api.metrics import STANDARD_METHODS, RequestMetrics


class Teapot:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = 418


def _client() -> tuple[falcon.testing.TestClient, RequestMetrics]:
    counters = RequestMetrics()
    app = falcon.App(middleware=[counters])
    app.add_route("/teapot", Teapot())
    return falcon.testing.TestClient(app), counters


def _series(counters: RequestMetrics) -> dict[tuple[str, str], float]:
    [family] = [m for m in counters.registry.collect() if m.name == "dart_http_requests"]
    return {(s.labels["method"], s.labels["status"]): s.value for s in family.samples if s.name.endswith("_total")}


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")  # the linter frowns on invented methods
def test_invented_methods_are_counted_as_other_and_do_not_grow_the_labels() -> None:
    client, counters = _client()
    for n in range(50):
        client.simulate_request(f"BREW{n}", "/teapot")
    client.simulate_request("PROPFIND", "/teapot")
    client.simulate_get("/teapot")
    series = _series(counters)
    assert {method for method, _ in series} <= STANDARD_METHODS | {"other"}
    assert sum(n for (method, _), n in series.items() if method == "other") == 51
    assert series[("GET", "418")] == 1


def test_status_codes_are_counted_as_sent_and_exposed_as_text() -> None:
    client, counters = _client()
    client.simulate_get("/teapot")
    client.simulate_get("/teapot")
    client.simulate_get("/nowhere")
    client.simulate_delete("/teapot")
    assert _series(counters) == {("GET", "418"): 2, ("GET", "404"): 1, ("DELETE", "405"): 1}
    text = generate_latest(counters.registry).decode()
    assert 'dart_http_requests_total{method="GET",status="418"} 2.0' in text
    assert "# TYPE dart_http_request_seconds_total counter" in text and "\ndart_http_request_seconds_total " in text
