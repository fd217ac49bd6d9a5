"""``/metrics`` through prometheus_client: requests by method and status, request time, the log's head,
each async projection's lag, and the run metrics of services/api/run_metrics.py. Under gunicorn
(PROMETHEUS_MULTIPROC_DIR set before prometheus_client is first imported) every worker writes its counts to that directory and any worker's ``/metrics`` adds them all up."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import falcon
from prometheus_client import CollectorRegistry, Counter, exposition
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from events.checkpoints import all_checkpoints
from events.store import EventStore
from projections.base import Projection
from services.api.run_metrics import RunCollector

# A label value per method a client may invent would grow the series without bound: the rest are "other".
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def multiprocess_dir() -> str | None:
    """The directory the workers share (prometheus_client's own variable), or None in a single process."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class RequestMetrics:
    """Falcon middleware counting every request into its own registry (one per app, so tests can build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dart_http_requests", "HTTP requests answered, by method and status.",
                                ["method", "status"], registry=self.registry)
        self.seconds = Counter("dart_http_request_seconds", "Time spent answering requests.",
                               registry=self.registry)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, ok: bool) -> None:
        elapsed = time.perf_counter() - getattr(req.context, "started", time.perf_counter())
        method = req.method if req.method in STANDARD_METHODS else "other"
        self.requests.labels(method=method, status=str(resp.status_code)).inc()
        self.seconds.inc(elapsed)


class StoreCollector(Collector):
    """The log's head and the async projections' lag, read from the store at each scrape (the same answer
    from any process, so it is never summed across workers)."""

    def __init__(self, store: EventStore, projections: Iterable[Projection]) -> None:
        self.store = store
        self.projections = [p for p in projections if p.mode == "async"]

    def describe(self) -> Iterator[Metric]:
        # Given, so registering this collector does not query the store.
        yield GaugeMetricFamily("dart_log_head_position", "The highest committed global position.")
        yield GaugeMetricFamily("dart_projection_lag_events", "Events an async projection has yet to apply.",
                                labels=["projection"])

    def collect(self) -> Iterator[Metric]:
        head = self.store.head_position()
        with self.store.engine.connect() as conn:
            checkpoints = all_checkpoints(conn)
        yield GaugeMetricFamily("dart_log_head_position", "The highest committed global position.", value=head)
        lag = GaugeMetricFamily("dart_projection_lag_events", "Events an async projection has yet to apply.",
                                labels=["projection"])
        for projection in self.projections:
            lag.add_metric([projection.name], head - checkpoints.get(projection.name, 0))
        yield lag


class _WorkersCollector(MultiProcessCollector):
    """Every worker's counts, skipping a file a worker is creating at that instant: prometheus_client opens a
    worker's file before it sizes it, and reading it empty raised (struct.error) and failed the whole scrape."""

    def collect(self) -> Iterable[Metric]:
        files = [path for path in glob.glob(os.path.join(self._path, "*.db")) if os.path.getsize(path) > 0]
        return self.merge(files, accumulate=True)  # type: ignore[no-any-return]


class Metrics:
    """``GET /metrics``: this process's counters, or under gunicorn every worker's, and the store's gauges."""

    def __init__(self, store: EventStore, projections: Iterable[Projection], counters: RequestMetrics) -> None:
        directory = multiprocess_dir()
        if directory is None:
            self.registry = counters.registry
        else:  # every worker's counts, read from the shared directory at each scrape
            self.registry = CollectorRegistry()
            _WorkersCollector(self.registry, path=directory)
        projections = list(projections)
        self.registry.register(StoreCollector(store, projections))
        self.registry.register(RunCollector(store, projections))  # runs, histograms, lags, slots (issue 15)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        encoder, content_type = exposition.choose_encoder(req.get_header("Accept") or "")
        resp.content_type = content_type
        resp.data = encoder(self.registry)
