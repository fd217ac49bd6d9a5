"""Event base class, the envelope of a recorded event, and expected-version markers.

Events are frozen dataclasses holding JSON-native payloads (str, int, float, bool, None, dict, list), so a
payload is stored as it is and rebuilt with ``cls(**data)``; the registry checks payload types on append.
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, ClassVar

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


class ExpectedVersion(enum.Enum):
    """Expected versions that are not a number: ANY skips the check, NO_STREAM requires a new stream."""

    ANY = "any"
    NO_STREAM = "no stream"

    def __str__(self) -> str:
        return self.value


Expected = int | ExpectedVersion


@dataclass(frozen=True)
class Event:
    """Base of every domain event. Subclasses set ``type_name`` (stable, past tense) and ``schema_version``."""

    type_name: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    category: ClassVar[str] = ""

    def payload(self) -> dict[str, Any]:
        names = _FIELD_NAMES.get(type(self))
        if names is None:  # dataclasses.fields() is slow enough to show on the append path: once per class
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))
        return {name: getattr(self, name) for name in names}


@dataclass(frozen=True)
class RawEvent:
    """An event given by type name and payload, for callers that do not hold the class (CLI, inbox, tests)."""

    type_name: str
    data: dict[str, Any]


# Where the change came from, when the caller said (a REST request's ``X-Dart-Source``, e.g. ``dart apply
# file=flows/nightly.yaml commit=3f2a…``). Ambient for the request's thread rather than a parameter, so every
# event the request appends records it, whichever command builds the metadata; workers never set it.
REQUEST_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("dart_request_source", default=None)


@dataclass(frozen=True)
class Metadata:
    """Who caused an event and in answer to what (``source``: from where, when the request said; left out of
    the stored metadata when unset, so events written without one are as they always were)."""

    actor: str = "system"
    correlation_id: str | None = None
    causation_id: str | None = None
    source: str | None = field(default_factory=REQUEST_SOURCE.get)
    # The W3C trace parent of the span that appended it (events/context.py), while tracing is on.
    traceparent: str | None = None

    def within(self, correlation_id: str | None, traceparent: str | None) -> Metadata:
        """This metadata with the ambient correlation id and trace parent where it leaves them unset."""
        if (correlation_id is None or self.correlation_id is not None) and (
            traceparent is None or self.traceparent is not None
        ):
            return self
        return dataclasses.replace(self, correlation_id=self.correlation_id or correlation_id,
                                   traceparent=self.traceparent or traceparent)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }
        if self.source is not None:
            out["source"] = self.source
        if self.traceparent is not None:
            out["traceparent"] = self.traceparent
        return out

    def as_json(self) -> str:
        """``as_dict()`` as compact JSON, the same text ``json.dumps(..., separators=(",", ":"))`` gives,
        written directly for the usual string-or-null fields (1 us against 4 on the append path)."""
        actor, correlation, causation = self.actor, self.correlation_id, self.causation_id
        if self.source is None and self.traceparent is None and type(actor) is str and (correlation is None or type(correlation) is str) and (
            causation is None or type(causation) is str
        ):
            return (
                '{"actor":' + _json_string(actor)
                + ',"correlation_id":' + ("null" if correlation is None else _json_string(correlation))
                + ',"causation_id":' + ("null" if causation is None else _json_string(causation)) + "}"
            )
        return json.dumps(self.as_dict(), separators=(",", ":"))


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended: the typed event plus its id and metadata."""

    event: Event | RawEvent
    metadata: Metadata = field(default_factory=Metadata)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class StreamAppend:
    """One stream's part of an append: its id, the version the caller expects, and the new events."""

    stream_id: str
    expected_version: Expected
    events: tuple[NewEvent, ...]

    def __init__(self, stream_id: str, expected_version: Expected, events: Any) -> None:
        object.__setattr__(self, "stream_id", stream_id)
        object.__setattr__(self, "expected_version", expected_version)
        object.__setattr__(
            self, "events", tuple(e if isinstance(e, NewEvent) else NewEvent(e) for e in events)
        )


@dataclass(frozen=True)
class RecordedEvent:
    """The envelope of a stored event (design.md §3). ``data`` is the payload upcast to the current version."""

    event_id: uuid.UUID
    stream_id: str
    stream_version: int
    global_position: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def category(self) -> str:
        return self.stream_id.split("-", 1)[0]

    @property
    def entity_id(self) -> str:
        return self.stream_id.split("-", 1)[1] if "-" in self.stream_id else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "stream_id": self.stream_id,
            "stream_version": self.stream_version,
            "global_position": self.global_position,
            "type": self.type,
            "schema_version": self.schema_version,
            "data": self.data,
            "metadata": self.metadata,
            "recorded_at": self.recorded_at.isoformat(),
        }


_new_object = object.__new__


def recorded_event(
    event_id: uuid.UUID,
    stream_id: str,
    stream_version: int,
    global_position: int,
    type: str,
    schema_version: int,
    data: dict[str, Any],
    metadata: dict[str, Any],
    recorded_at: datetime,
) -> RecordedEvent:
    """``RecordedEvent(...)`` for the stores, which build one per event appended or read: the same frozen
    object, its fields written straight into its ``__dict__`` instead of through ``object.__setattr__`` one
    by one (0.9 us against 2.8). RecordedEvent has no ``__post_init__`` for this to skip."""
    event = _new_object(RecordedEvent)
    event.__dict__.update(
        event_id=event_id, stream_id=stream_id, stream_version=stream_version, global_position=global_position,
        type=type, schema_version=schema_version, data=data, metadata=metadata, recorded_at=recorded_at,
    )
    return event


assert not hasattr(RecordedEvent, "__post_init__") and not hasattr(RecordedEvent, "__slots__")


def stream_id(category: str, entity_id: str) -> str:
    return f"{category}-{entity_id}"
