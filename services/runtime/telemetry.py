"""Tracing's wiring (issue 15): when an OTLP endpoint is configured (``DART_OTEL_EXPORTER_OTLP_ENDPOINT``, or
the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``), this process's spans (services/commands/tracing.py) are batched
and exported over OTLP/HTTP; otherwise nothing is set up and tracing costs nothing. The SDK and the exporter are
imported here only, by the composition root: every other module speaks opentelemetry's API."""

from __future__ import annotations

import logging
import os

from services.commands import tracing
from services.runtime.settings import Settings

log = logging.getLogger("dart.telemetry")
_configured_in: int | None = None  # the pid that set tracing up (a forked gunicorn worker sets its own)


def otlp_traces_url(settings: Settings) -> str | None:
    """Where spans go: ``<endpoint>/v1/traces`` (the standard variable's meaning), or None when unset."""
    base = settings.otel_exporter_otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    if traces and not settings.otel_exporter_otlp_endpoint:
        return traces  # the standard per-signal variable is the full URL
    return f"{base.rstrip('/')}/v1/traces" if base else None


def configure_tracing(settings: Settings, service: str = "dart") -> bool:
    """Export this process's spans when an endpoint is configured; once per process. True when tracing."""
    global _configured_in
    url = otlp_traces_url(settings)
    if url is None:
        return False
    if _configured_in == os.getpid():
        return True
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    tracing.enable(provider)
    _configured_in = os.getpid()
    log.info("tracing: spans exported over OTLP/HTTP to %s", url)
    return True
