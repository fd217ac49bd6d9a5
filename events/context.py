"""The ambient context of the code that appends events (issue 15): the correlation id and the W3C trace parent
recorded in the metadata of every event it appends (where the event's own metadata leaves them unset), and the
event a consumer is handling, which every log line of that consumer names. Plain context variables, set by the
layers above (a request, a consumer, a launch): the log knows nothing of tracing libraries."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping

# The run's correlation id: the first cause's id (a request's, or the first event's), kept by every reaction.
CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("dart_correlation_id", default=None)
# The current span as a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``), while tracing is on.
TRACEPARENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("dart_traceparent", default=None)
# The event being handled: {"event_id", "stream_id", "correlation_id"}, for log lines.
HANDLING: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("dart_handling", default=None)


@contextlib.contextmanager
def ambient(correlation_id: str | None = None, traceparent: str | None = None,
            handling: Mapping[str, str] | None = None) -> Iterator[None]:
    """Set the given parts of the context for the block (the others stay as they are)."""
    tokens: list[tuple[contextvars.ContextVar, contextvars.Token]] = []  # type: ignore[type-arg]
    for var, value in ((CORRELATION_ID, correlation_id), (TRACEPARENT, traceparent), (HANDLING, handling)):
        if value is not None:
            tokens.append((var, var.set(value)))  # type: ignore[arg-type]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def handling_fields(event_id: str, stream_id: str, metadata: Mapping[str, object]) -> dict[str, str]:
    """What a log line of a consumer says of the event it handles: the correlation id is the event's, or
    the event's own id for an event that started a chain."""
    return {"event_id": event_id, "stream_id": stream_id,
            "correlation_id": str(metadata.get("correlation_id") or event_id)}
