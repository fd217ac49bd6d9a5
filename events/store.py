"""The EventStore interface and what both SQL implementations share: serialising appends, decoding rows,
inline projections and the in-process "something was appended" signal that catch-up readers wait on."""

from __future__ import annotations

import json
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from events.context import CORRELATION_ID, TRACEPARENT
from events.errors import ConcurrencyError, EventSchemaError, IdempotencyConflict
from events.registry import EventRegistry
from events.types import Expected, ExpectedVersion, RecordedEvent, StreamAppend, recorded_event

# A stream's version is the number of events in it: the first event has version 1, a new stream is at 0.
NO_VERSION = 0
ANY_RETRIES = 20

# json.dumps(x, separators=...) builds a JSONEncoder on every call; one built once gives the same text.
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


class InlineProjection(Protocol):
    """What the store needs of a projection that runs inside the append's transaction."""

    name: str

    def handles(self, type_name: str) -> bool: ...

    def apply(self, conn: sa.Connection, events: Sequence[RecordedEvent]) -> None: ...


@dataclass(slots=True)
class PendingRow:
    """One event serialised for insertion; ``stream_version`` is None when the server must compute it.

    Internal to an append and never changed after it is built; not frozen, because a frozen dataclass sets
    each of its ten fields through ``object.__setattr__`` (3 us per event against 0.4).
    """

    event_id: uuid.UUID
    stream_id: str
    stream_version: int | None
    offset: int  # 1-based position of the event within its stream's part of this append
    type: str
    schema_version: int
    data: dict[str, Any]
    data_json: str
    metadata: dict[str, Any]
    metadata_json: str


def expected_as_int(expected: Expected) -> int | None:
    """The numeric version a stream must be at, or None for ANY."""
    if type(expected) is int and expected >= 0:  # the usual case first: one test
        return expected
    if expected is ExpectedVersion.ANY:
        return None
    if expected is ExpectedVersion.NO_STREAM:
        return NO_VERSION
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValueError(f"expected version must be a non-negative int, ANY or NO_STREAM, not {expected!r}")
    return expected


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class EventStore(ABC):
    """An append-only log of events in streams, with one global order that catch-up readers can trust."""

    def __init__(self, engine: sa.Engine, registry: EventRegistry) -> None:
        self.engine = engine
        # For reads outside any transaction: each statement is its own snapshot, as every statement of a READ
        # COMMITTED transaction is anyway. PostgreSQL's is autocommit, which saves the BEGIN and the ROLLBACK
        # (two round trips) a read in a transaction costs; SQLite's connections already read in autocommit.
        self.read_engine = engine
        self.registry = registry
        self._inline: list[InlineProjection] = []
        self._append_lock = threading.Lock()
        self._appended = threading.Condition(self._append_lock)
        self._head_seen = 0
        self._type_heads: dict[str, int] = {}  # event type -> position of its latest append in this process
        self._waiting = 0  # threads inside wait_for_append: an append notifies only when there are some
        self._wake_all = 0  # bumped when appends of unknown types may have been missed (a LISTEN (re)connect)

    # ----------------------------------------------------------------------------------------- writes
    @abstractmethod
    def append(self, *appends: StreamAppend) -> list[RecordedEvent]:
        """Append to one or more streams in one transaction, all or nothing.

        Raises ConcurrencyError when a stream is not at its expected version. Appending event ids that are
        already stored is a no-op that returns the stored events, whatever the streams' versions are now.
        """

    # ------------------------------------------------------------------------------------------ reads
    @abstractmethod
    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """A stream's events with from_version <= version (<= to_version), in order."""

    @abstractmethod
    def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        types: Iterable[str] | None = None,
        streams: Iterable[str] | None = None,
        until_position: int | None = None,
    ) -> list[RecordedEvent]:
        """Events with global_position > after_position (and <= until_position) in global order."""

    @abstractmethod
    def stream_version(self, stream_id: str) -> int:
        """The stream's current version: 0 for a stream with no events."""

    @abstractmethod
    def head_position(self) -> int:
        """The highest committed global position, 0 for an empty store."""

    @abstractmethod
    def count(self, types: Iterable[str] | None = None) -> int:
        """How many events are stored (of these types)."""

    @abstractmethod
    def read_by_ids(self, event_ids: Sequence[uuid.UUID]) -> list[RecordedEvent]:
        """The stored events with these ids, in global order."""

    @abstractmethod
    def iter_category(self, category: str, until_position: int) -> Iterator[RecordedEvent]:
        """Every event of ``<category>-*`` streams up to a position, ordered by stream then version.

        Streamed, so memory stays flat: a rebuild folds one entity at a time.
        """

    def read_until(self, stream_id: str, *, position: int | None = None, at: datetime | None = None) -> list[RecordedEvent]:
        """A stream's events recorded at or before a global position or a moment (time travel)."""
        events = self.read_stream(stream_id)
        if position is not None:
            events = [e for e in events if e.global_position <= position]
        if at is not None:
            events = [e for e in events if e.recorded_at <= at]
        return events

    def iter_all(
        self, after_position: int = 0, batch: int = 5000, until_position: int | None = None, **filters: Any
    ) -> Iterator[RecordedEvent]:
        """Every event after a position, read in batches."""
        position = after_position
        while True:
            rows = self.read_all(position, batch, until_position=until_position, **filters)
            if not rows:
                return
            yield from rows
            position = rows[-1].global_position
            if len(rows) < batch:
                return

    # -------------------------------------------------------------------------- inline projections
    def add_inline_projection(self, projection: InlineProjection) -> None:
        self._inline.append(projection)

    @property
    def inline_projections(self) -> list[InlineProjection]:
        return list(self._inline)

    def _projections_for(self, rows: Sequence[PendingRow]) -> list[InlineProjection]:
        if not self._inline:
            return []
        types = {r.type for r in rows}
        return [p for p in self._inline if any(p.handles(t) for t in types)]

    def _apply_inline(
        self, conn: sa.Connection, projections: list[InlineProjection], recorded: list[RecordedEvent]
    ) -> None:
        for projection in projections:
            mine = [e for e in recorded if projection.handles(e.type)]
            if mine:
                projection.apply(conn, mine)

    # -------------------------------------------------------------------------------- transactions
    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A read-write transaction on the store's database, for projection runners and checkpoints."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def exclusive_transaction(self) -> Iterator[sa.Connection]:
        """A transaction during which no append can commit (used to swap rebuilt read models in)."""
        with self.transaction() as conn:
            yield conn

    # --------------------------------------------------------------------------- append signalling
    def _signal_appended(self, recorded: Sequence[RecordedEvent]) -> None:
        position = recorded[-1].global_position
        # The bare lock, not the Condition's Python-level __enter__; notify_all only when a reader waits
        # (waiters register under this same lock, so none can be missed).
        with self._append_lock:
            if position > self._head_seen:  # noqa: PLR1730 - the append path: a compare, not a call
                self._head_seen = position
            heads = self._type_heads
            for event in recorded:
                if event.global_position > heads.get(event.type, 0):
                    heads[event.type] = event.global_position
            if self._waiting:
                self._appended.notify_all()

    def _signal_remote(self, position: int, types: Mapping[str, int] | None) -> None:
        """Another process (or this one, heard back) committed events up to ``position``: of these types,
        each up to its own position (None: types unknown). Positions per type are exact, so a typed reader
        whose position stays at its last event is not woken again and again. Readers are woken only when this tells them something new: the echo of this
        process's own append, already signalled, wakes nobody."""
        changed = False
        with self._append_lock:
            if position > self._head_seen:
                self._head_seen = position
                changed = True
            if types is None:
                # Wake every reader waiting now, once: each reads and waits again. (A typed reader between
                # its read and its wait at this moment finds what it missed on its fallback poll; a lasting
                # "head of unknown types" would keep a typed reader whose position stays below it spinning.)
                self._wake_all += 1
                changed = True
            else:
                heads = self._type_heads
                for type_name, at in types.items():
                    if at > heads.get(type_name, 0):
                        heads[type_name] = at
                        changed = True
            if changed and self._waiting:
                self._appended.notify_all()

    # Whether wait_for_append also wakes for other processes' appends (PostgreSQL LISTEN/NOTIFY); when it
    # does, readers' polls are only a fallback and may be long.
    wakes_across_processes = False

    def wait_for_append(self, after_position: int, timeout: float, types: Sequence[str] | None = None) -> bool:
        """Block until an append past ``after_position`` (an event of one of ``types``, if given) is known
        or the timeout passes. A reader that handles a few types is not woken by every other append.

        This process's appends signal on every store; other processes' only where ``wakes_across_processes``
        (PostgreSQL: LISTEN/NOTIFY), and readers elsewhere poll for them.
        """
        with self._appended:
            woken_at = self._wake_all
            if types is None:
                def arrived() -> bool:
                    return self._head_seen > after_position or self._wake_all != woken_at
            else:
                heads = self._type_heads

                def arrived() -> bool:
                    return self._wake_all != woken_at or any(heads.get(t, 0) > after_position for t in types)
            if arrived():
                return True
            self._waiting += 1
            try:
                return self._appended.wait_for(arrived, timeout)
            finally:
                self._waiting -= 1

    # ------------------------------------------------------------------------------------ helpers
    def _pending_rows(self, appends: Sequence[StreamAppend]) -> list[PendingRow]:
        rows: list[PendingRow] = []
        seen_streams: set[str] = set()
        # The ambient correlation id and trace parent (events/context.py) go into every event whose own
        # metadata leaves them unset: read once per append, nothing added when neither is set.
        correlation_id, traceparent = CORRELATION_ID.get(), TRACEPARENT.get()
        ambient = correlation_id is not None or traceparent is not None
        for part in appends:
            if part.stream_id in seen_streams:
                raise ValueError(f"stream {part.stream_id!r} appears twice in one append")
            seen_streams.add(part.stream_id)
            if not part.events:
                continue
            base = expected_as_int(part.expected_version)
            stream_category = part.stream_id.split("-", 1)[0]
            for offset, new in enumerate(part.events, start=1):
                type_name, version, data = self.registry.serialize(new.event)
                category = self.registry.class_for(type_name).category
                if category and category != stream_category:
                    # Read models pick events by type, rebuilds by stream: they agree only if types stay home.
                    raise EventSchemaError(type_name, {"stream_id": f"{type_name} belongs in {category}-* streams, "
                                                                    f"not {part.stream_id!r}"})
                data_json = _encode_json(data)
                metadata = new.metadata.within(correlation_id, traceparent) if ambient else new.metadata
                if "\\u0000" in data_json and _has_nul(data):  # PostgreSQL text and jsonb cannot hold NUL
                    raise EventSchemaError(type_name, {"<payload>": "strings must not contain NUL (\\u0000)"})
                rows.append(
                    PendingRow(
                        event_id=new.event_id,
                        stream_id=part.stream_id,
                        stream_version=None if base is None else base + offset,
                        offset=offset,
                        type=type_name,
                        schema_version=version,
                        data=data,
                        data_json=data_json,
                        metadata=metadata.as_dict(),
                        metadata_json=metadata.as_json(),
                    )
                )
        return rows

    def _decode(
        self,
        event_id: Any,
        stream_id: str,
        stream_version: int,
        global_position: int,
        type_name: str,
        schema_version: int,
        data: Any,
        metadata: Any,
        recorded_at: datetime,
    ) -> RecordedEvent:
        if isinstance(data, str):
            data = json.loads(data)
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if schema_version < self.registry.current_version_or(type_name, schema_version):
            schema_version, data = self.registry.upcast(type_name, schema_version, data)
        if recorded_at.tzinfo is not UTC:
            recorded_at = recorded_at.astimezone(UTC)
        return recorded_event(
            event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id)),
            stream_id,
            stream_version,
            global_position,
            type_name,
            schema_version,
            data,
            metadata,
            recorded_at,
        )

    @staticmethod
    def _match_stored(rows: Sequence[PendingRow], stored: list[RecordedEvent]) -> list[RecordedEvent] | None:
        """The stored result of an append whose event ids are already in the log (idempotent re-append), or
        None when none are; IdempotencyConflict when only some are, or under other streams or types."""
        if not stored:
            return None
        by_id = {e.event_id: e for e in stored}
        if len(by_id) != len(rows) or any(
            r.event_id not in by_id or by_id[r.event_id].stream_id != r.stream_id or by_id[r.event_id].type != r.type
            for r in rows
        ):
            raise IdempotencyConflict(
                f"{len(by_id)} of {len(rows)} event ids are already stored with other content or streams"
            )
        return [by_id[r.event_id] for r in rows]

    def _raise_version_conflict(self, appends: Sequence[StreamAppend], actual: dict[str, int]) -> bool:
        """Raise ConcurrencyError for the first stream not at its expected version.

        Returns False when every stream is where the caller expected (a stale snapshot lost a race and the
        append should simply be tried again).
        """
        for part in appends:
            want = expected_as_int(part.expected_version)
            if want is not None and actual.get(part.stream_id, 0) != want:
                raise ConcurrencyError(part.stream_id, part.expected_version, actual.get(part.stream_id, 0))
        return False

    def close(self) -> None:
        self.engine.dispose()
