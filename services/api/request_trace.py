"""Each request's place in its run's trace and correlation (issue 15): a server span, child of the caller's
``traceparent`` header when it sends one (an engine passes its ``TRACEPARENT`` on), and a correlation id, the
caller's ``X-Dart-Correlation-Id`` (an engine's run) or a new one, both recorded in every event the request
appends (events/context.py). The probes and ``/metrics`` open no span."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import falcon

from events.context import ambient
from services.commands import tracing

CORRELATION_HEADER = "X-Dart-Correlation-Id"
UNTRACED = frozenset({"/health", "/ready", "/metrics"})


class RequestTrace:
    """Falcon middleware: first in, last out, so the span covers every other middleware's work."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = (req.get_header(CORRELATION_HEADER) or "").strip()[:100]
        stack = contextlib.ExitStack()
        req.context.trace_stack = stack
        stack.enter_context(ambient(correlation_id=given or uuid.uuid4().hex))
        if tracing.enabled() and req.path not in UNTRACED:
            req.context.span = stack.enter_context(tracing.span(
                f"{req.method} {req.path}", req.get_header("traceparent"), kind=tracing.SERVER,
                attributes={"http.request.method": req.method, "url.path": req.path}))

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        span = getattr(req.context, "span", None)
        if span is not None and req.uri_template:
            span.update_name(f"{req.method} {req.uri_template}")
            span.set_attribute("http.route", req.uri_template)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, ok: bool) -> None:
        span = getattr(req.context, "span", None)
        if span is not None:
            span.set_attribute("http.response.status_code", resp.status_code)
            if resp.status_code >= 500:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR))
        stack = getattr(req.context, "trace_stack", None)
        if stack is not None:
            req.context.trace_stack = None
            stack.close()
