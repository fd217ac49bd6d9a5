"""``/metrics`` in the Prometheus text format: requests by method and status, request time, the log's
head and each async projection's lag. Counted in-process; each gunicorn worker reports its own."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import falcon

from events.checkpoints import all_checkpoints


class RequestMetrics:
    """Falcon middleware counting every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.seconds = 0.0

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, ok: bool) -> None:
        elapsed = time.perf_counter() - getattr(req.context, "started", time.perf_counter())
        with self._lock:
            self.requests[(req.method, resp.status.split()[0] if isinstance(resp.status, str) else str(resp.status))] += 1
            self.seconds += elapsed


class MetricsResource:
    def __init__(self, container: Any, counters: RequestMetrics) -> None:
        self.container = container
        self.counters = counters

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        store = self.container.store
        head = store.head_position()
        with store.engine.connect() as conn:
            checkpoints = all_checkpoints(conn)
        lines = [
            "# HELP dart_http_requests_total HTTP requests answered, by method and status.",
            "# TYPE dart_http_requests_total counter",
        ]
        with self.counters._lock:
            for (method, status), n in sorted(self.counters.requests.items()):
                lines.append(f'dart_http_requests_total{{method="{method}",status="{status}"}} {n}')
            lines += ["# HELP dart_http_request_seconds_total Time spent answering requests.",
                      "# TYPE dart_http_request_seconds_total counter",
                      f"dart_http_request_seconds_total {self.counters.seconds:.6f}"]
        lines += ["# HELP dart_log_head_position The highest committed global position.",
                  "# TYPE dart_log_head_position gauge", f"dart_log_head_position {head}",
                  "# HELP dart_projection_lag_events Events an async projection has yet to apply.",
                  "# TYPE dart_projection_lag_events gauge"]
        for projection in self.container.projections:
            if projection.mode == "async":
                lag = head - checkpoints.get(projection.name, 0)
                lines.append(f'dart_projection_lag_events{{projection="{projection.name}"}} {lag}')
        resp.content_type = "text/plain; version=0.0.4"
        resp.text = "\n".join(lines) + "\n"
