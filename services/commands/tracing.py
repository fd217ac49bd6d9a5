"""Traces (issue 15): a run's spans, from its trigger through the events it appends, the consumers that handle
them and the launch, into its engine. Written against opentelemetry's API only: the SDK and the OTLP exporter
are wired by services/runtime/telemetry.py when an endpoint is configured, and until then every helper here
returns at once (no span, no context object, nothing recorded).

The trace crosses the log as a W3C ``traceparent`` in event metadata: each span puts its own in the ambient
context (events/context.py), the store records it in every event appended inside the span, and a consumer
handling that event opens its span as a child of it. ``handling`` also sets what every log line of a consumer
names (the event id, its stream, the run's correlation id), tracing on or off."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from events.context import CORRELATION_ID, HANDLING, TRACEPARENT, ambient, handling_fields
from events.types import RecordedEvent

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None
SERVER = trace.SpanKind.SERVER
CONSUMER = trace.SpanKind.CONSUMER


def enable(provider: trace.TracerProvider) -> None:
    """Trace from now on, with spans of ``provider`` (services/runtime/telemetry.py)."""
    global _tracer
    _tracer = provider.get_tracer("dart")


def disable() -> None:
    global _tracer
    _tracer = None


def enabled() -> bool:
    return _tracer is not None


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (None while tracing is off)."""
    return TRACEPARENT.get()


@contextlib.contextmanager
def span(name: str, parent: str | None = None, *, kind: trace.SpanKind = trace.SpanKind.INTERNAL,
         attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span | None]:
    """A span named ``name``, child of ``parent`` (a traceparent) if given, else of the current span; events
    appended inside it record it. Yields the span, or None while tracing is off."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    context = _PROPAGATOR.extract({"traceparent": parent}) if parent else None
    with tracer.start_as_current_span(name, context=context, kind=kind,
                                      attributes={k: v for k, v in (attributes or {}).items() if v is not None}
                                      ) as current:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        with ambient(traceparent=carrier.get("traceparent")):
            yield current


@contextlib.contextmanager
def handling(consumer: str, event: RecordedEvent, step: str | None = None) -> Iterator[None]:
    """A consumer's handling of one event: its log lines name the event, the events it appends keep the run's
    correlation id, and (tracing on) its span continues the trace recorded in the event's metadata. An
    exception leaving the block carries the event's fields (``dart_handling``) for the line that logs it.
    ``step`` names a later step of the same event's handling (its span is named for it)."""
    current = HANDLING.get()
    if step is None and current is not None and current.get("event_id") == str(event.event_id):
        yield  # already inside this event's handling (a broker consumer around the consumer's own loop)
        return
    fields = handling_fields(str(event.event_id), event.stream_id, event.metadata)
    try:
        with ambient(correlation_id=fields["correlation_id"], handling=fields):
            if _tracer is None:
                yield
            else:
                with span(f"{consumer} {step or event.type}", event.metadata.get("traceparent"), kind=CONSUMER,
                          attributes={"dart.consumer": consumer, "dart.event_id": fields["event_id"],
                                      "dart.stream_id": event.stream_id, "dart.event_type": event.type,
                                      "dart.correlation_id": fields["correlation_id"]}):
                    yield
    except Exception as exc:
        if not hasattr(exc, "dart_handling"):
            try:
                exc.dart_handling = fields  # type: ignore[attr-defined]
            except AttributeError:
                pass
        raise


@contextlib.contextmanager
def launching(store: Any, action: Mapping[str, Any]) -> Iterator[None]:
    """An engine's launch, in its action's run: the correlation id and trace of the event that created the
    action (its stream's first), not those of whatever event the launcher, or the orchestrator that queued it,
    happened to be handling: a broker delivers in no order, and the decision to queue a datastore's next action
    may come from another chain's event (a datastore activated) as well as from the run's own."""
    created = store.read_stream(f"action-{action['id']}", to_version=1)
    cause = created[0] if created else None
    metadata = cause.metadata if cause is not None else {}
    fields = handling_fields(str(cause.event_id), cause.stream_id, metadata) if cause is not None else None
    attributes = {"dart.action_id": action["id"], "dart.engine": action.get("engine_name"),
                  "dart.action_type": action.get("action_type_name"),
                  "dart.workflow_instance_id": action.get("workflow_instance_id")}
    with (ambient(correlation_id=metadata.get("correlation_id"), handling=fields),
          span(f"launch {action.get('engine_name')} {action.get('action_type_name')}", metadata.get("traceparent"),
               attributes=attributes)):
        yield


def engine_environment() -> dict[str, str]:
    """What an engine gets of its run's context: ``TRACEPARENT`` (the launch span, while tracing) and
    ``DART_CORRELATION_ID``; the engine SDK sends them back as headers, so its check-out, progress and
    check-in join the run's trace and correlation."""
    env = {}
    traceparent, correlation_id = TRACEPARENT.get(), CORRELATION_ID.get()
    if traceparent:
        env["TRACEPARENT"] = traceparent
    if correlation_id:
        env["DART_CORRELATION_ID"] = correlation_id
    return env
