"""The errors the event store raises: each is a failure a caller can cause and must be able to tell apart."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base class of every error the store raises on purpose."""


class ConcurrencyError(EventStoreError):
    """A stream was not at the version the caller expected; nothing was appended."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r}: expected version {expected}, actual version {actual}"
        )


class UnknownEventType(EventStoreError):
    """An event type name that the registry does not know."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(f"unknown event type {type_name!r}")


class EventSchemaError(EventStoreError):
    """An event payload that does not fit its type's schema."""

    def __init__(self, type_name: str, problems: dict[str, str]) -> None:
        self.type_name = type_name
        self.problems = problems
        detail = "; ".join(f"{field}: {msg}" for field, msg in sorted(problems.items()))
        super().__init__(f"{type_name} payload is invalid: {detail}")


class DuplicateEventType(EventStoreError):
    """Two classes registered under one type name and version."""


class IdempotencyConflict(EventStoreError):
    """Some, but not all, of an append's event ids are already stored, or stored under other streams or types.

    Payloads are not compared: a redelivered command may re-derive the same event ids with a payload that
    differs in details (a timestamp), and the first recording is the one that counts.
    """
