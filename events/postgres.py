"""The PostgreSQL event store.

Global order: every append takes one transaction-level advisory lock *inside its INSERT statement*
(``WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock(k))``), so positions are drawn from the sequence and
committed strictly one transaction after another. PostgreSQL makes a transaction visible before it releases
its locks, so when the next appender gets the lock and draws its first position, every lower position is
already visible or was rolled back for good: a reader that has seen position N never later meets a committed
event below N. Taking the lock as its own statement would cost a round trip with the lock held; the lock-free
xid8 alternative needs readers to order by (xid, position), which breaks the plain position checkpoint
(design.md §3 has the measurements behind this choice).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg_pool import ConnectionPool

from events.errors import ConcurrencyError
from events.group_commit import GroupCommitter, Member
from events.pg_connections import (
    AppendConnection,
    closed_by_server,
    give_cursor,
    replace_connections_closed_by_server,
)
from events.pg_listen import NOTIFY_FROM_INS, AppendListener
from events.postgres_group import commit_group
from events.registry import EventRegistry
from events.store import ANY_RETRIES, EventStore, InlineProjection, PendingRow, expected_as_int
from events.types import RecordedEvent, StreamAppend, recorded_event

APPEND_LOCK_KEY = 0x64617274  # "dart": the one lock that orders every append
APPEND_POOL_SIZE = 16

_COLUMNS = (
    "event_id, stream_id, stream_version, global_position, type, schema_version, data, metadata, recorded_at"
)

# Parameters go in binary (``%(name)b``): psycopg then sends each array as it is, instead of quoting and
# escaping every JSON document into a text array literal (measured: 100-event appends 9,700 -> 18,400 events/s,
# 75 -> 29 us of client CPU per event).
_INSERT = f"""
WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock(%(lock)b) AS locked),
     v AS MATERIALIZED (
        SELECT s.stream_id, dart_stream_version(s.stream_id, s.expected) AS current
        FROM l, unnest(%(part_streams)b::text[], %(part_expected)b::int[]) AS s(stream_id, expected)),
     ins AS (
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at)
SELECT r.event_id, r.stream_id, v.current + r.off, r.type, r.schema_version, r.data::jsonb, r.metadata::jsonb,
       clock_timestamp()
FROM unnest(%(ids)b::uuid[], %(streams)b::text[], %(offs)b::int[], %(types)b::text[], %(svs)b::int[],
            %(datas)b::text[], %(metas)b::text[]) WITH ORDINALITY
       AS r(event_id, stream_id, off, type, schema_version, data, metadata, ord)
JOIN v ON v.stream_id = r.stream_id
ORDER BY r.ord
RETURNING event_id, stream_version, global_position, recorded_at, type)
SELECT event_id, stream_version, global_position, recorded_at, {NOTIFY_FROM_INS}
FROM ins
"""

# The common case, one event to one stream, without arrays or CTEs: the lock is the FROM item, so the
# version function in the select list runs after it.
_INSERT_ONE = """
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at)
SELECT %s, %s, dart_stream_version(%s, %s) + 1, %s, %s, %s::jsonb, %s::jsonb, clock_timestamp()
FROM pg_advisory_xact_lock(%s)
RETURNING event_id, stream_version, global_position, recorded_at, pg_notify('dart_events', global_position::text || ' ' || type)
"""

# One event at an exact expected version needs no function: the unique (stream_id, stream_version) index
# refuses it if the stream moved past the expected version (even while this statement waited for the lock),
# and the EXISTS refuses a version beyond the stream's end. A stale snapshot can only make it refuse wrongly,
# which the caller re-checks and retries.
_INSERT_ONE_EXACT = """
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at)
SELECT %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, clock_timestamp()
FROM pg_advisory_xact_lock(%s)
WHERE %s = 0 OR EXISTS (SELECT 1 FROM events WHERE stream_id = %s AND stream_version = %s)
RETURNING event_id, stream_version, global_position, recorded_at, pg_notify('dart_events', global_position::text || ' ' || type)
"""

# dart_stream_version() raises this SQLSTATE when a stream is not at its expected version.
VERSION_CONFLICT = "DV001"


class _VersionCheckFailed(Exception):
    """The statement's snapshot saw a stream at another version than expected; nothing was inserted."""


@dataclass(slots=True)
class Work:
    """One caller's append, as the group committer carries it."""

    appends: tuple[StreamAppend, ...]
    rows: list[PendingRow]
    params: dict[str, Any]
    projections: list[InlineProjection]


def _group_params(work: Work) -> dict[str, Any]:
    params = work.params if "ids" in work.params else _params(work.rows, work.appends)
    return {k: v for k, v in params.items() if k != "lock"}


class _ConnectionLost(Exception):
    """An append's connection broke before the append's outcome was known."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error  # the driver's (or SQLAlchemy's) error, raised to the caller if the retry fails too


class PostgresEventStore(EventStore):
    def __init__(self, engine: sa.Engine, registry: EventRegistry, append_pool_size: int = APPEND_POOL_SIZE) -> None:
        super().__init__(engine, registry)
        self.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        if not sa.event.contains(engine, "checkout", replace_connections_closed_by_server):
            sa.event.listen(engine, "checkout", replace_connections_closed_by_server)
        # Appends no inline projection needs run in autocommit on these connections: one statement, one
        # round trip, without the SQLAlchemy checkout and reset work. The pool bounds them (an appender
        # beyond the bound waits up to `timeout` for one, then gets PoolTimeout, an OperationalError),
        # opens them lazily (min_size 0) on one worker thread, replaces lost and hour-old ones in the
        # background, and shrinks back after 10 idle minutes. It runs no `check` of its own: it sleeps 1 s,
        # 2 s, 4 s ... between connections that fail one, which after a restart (every idle connection
        # dead) would stall the first append for seconds; `_borrow` checks without sleeping instead.
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._append_pool: ConnectionPool[AppendConnection] = ConnectionPool(
            self._conninfo,
            connection_class=AppendConnection, kwargs={"autocommit": True}, configure=give_cursor,
            min_size=0, max_size=append_pool_size, open=True, name="dart-append", num_workers=1,
        )
        self._committer: GroupCommitter[Work] = GroupCommitter(self._append_solo, self._commit_group)
        self._listener: AppendListener | None = None
        self._listener_lock = threading.Lock()

    wakes_across_processes = True

    def wait_for_append(self, after_position: int, timeout: float, types: Sequence[str] | None = None) -> bool:
        if self._listener is None:  # the first reader to wait in this process starts the LISTEN connection
            with self._listener_lock:
                if self._listener is None:
                    self._listener = AppendListener(self._conninfo, self._signal_remote)
        return super().wait_for_append(after_position, timeout, types)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._append_pool.close()
        super().close()

    def _borrow(self) -> AppendConnection:
        """A pooled append connection the server has not closed. After a restart every idle connection is
        dead: each is found so in microseconds and handed back, and the pool replaces it in the background."""
        pool = self._append_pool
        for _ in range(pool.max_size):
            conn = pool.getconn()
            if not closed_by_server(conn):
                return conn
            conn.close()
            pool.putconn(conn)  # closed: the pool discards it and opens a new one
        return pool.getconn()  # the last one may be fresh from the server, or the error is real

    # ----------------------------------------------------------------------------------------- writes
    def append(self, *appends: StreamAppend) -> list[RecordedEvent]:
        rows = self._pending_rows(appends)
        if not rows:
            return []
        projections = self._projections_for(rows)
        # One event to one stream needs no arrays: skip building them.
        params = ({"part_expected": [expected_as_int(appends[0].expected_version)]}
                  if len(rows) == 1 and not projections else _params(rows, appends))
        return self._committer.submit(Work(appends, rows, params, projections))

    def _commit_group(self, members: Sequence[Member[Work]]) -> None:
        commit_group(self, members, APPEND_LOCK_KEY, _group_params)

    def _append_solo(self, work: Work) -> list[RecordedEvent]:
        appends, rows, params, projections = work.appends, work.rows, work.params, work.projections
        reconnected = False
        for _attempt in range(ANY_RETRIES):
            try:
                recorded = self._insert(rows, params, projections)
            except _ConnectionLost as lost:
                # The connection broke under the append (one the server closed while idle is never used:
                # see _borrow). Whether the append committed is then unknown: the statement, or the COMMIT,
                # may have been applied with its answer lost on the way back. Sending the same rows again
                # cannot apply them twice: they keep their event ids, and uq_events_event_id refuses a
                # second copy. If the first try committed, the second fails on that index (or on the
                # stream's version, whose unique index and version checks see the first try's events) and
                # _already_stored below returns what the first try stored, as for any idempotent re-append.
                # If the first try is still running in a backend whose client went away, the unique index
                # makes the second wait for it and fail the same way. If it did not commit, the second is
                # the only one. Once only: a second broken connection is an outage, for the caller to see.
                if reconnected:
                    raise lost.error from None
                reconnected = True
                continue
            except (psycopg.DatabaseError, _VersionCheckFailed) as exc:
                if isinstance(exc, psycopg.DatabaseError) and not (
                    isinstance(exc, psycopg.errors.UniqueViolation) or exc.sqlstate == VERSION_CONFLICT
                ):
                    raise
                stored = self._already_stored(rows)
                if stored is not None:
                    return stored
                self._raise_version_conflict(appends, self._versions([a.stream_id for a in appends]))
                continue  # the streams are where the caller expected (a racing ANY append): try again
            self._signal_appended(recorded)
            return recorded
        part = appends[0]
        raise ConcurrencyError(part.stream_id, part.expected_version, self.stream_version(part.stream_id))

    def _insert(
        self, rows: list[PendingRow], params: dict[str, Any], projections: list[InlineProjection]
    ) -> list[RecordedEvent]:
        if not projections:
            # One statement in autocommit: one round trip, the lock held only inside the server.
            conn = self._borrow()
            cursor = conn.append_cursor
            try:
                expected = params["part_expected"][0]
                if len(rows) == 1 and expected is not None:
                    row = rows[0]
                    cursor.execute(_INSERT_ONE_EXACT, (
                        row.event_id, row.stream_id, expected + 1, row.type, row.schema_version, row.data_json,
                        row.metadata_json, APPEND_LOCK_KEY, expected, row.stream_id, expected,
                    ))
                elif len(rows) == 1:
                    row = rows[0]
                    cursor.execute(_INSERT_ONE, (
                        row.event_id, row.stream_id, row.stream_id, params["part_expected"][0], row.type,
                        row.schema_version, row.data_json, row.metadata_json, APPEND_LOCK_KEY,
                    ))
                else:
                    cursor.execute(_INSERT, params)
                returned = cursor.fetchall()
            except psycopg.OperationalError as exc:
                if conn.closed:
                    raise _ConnectionLost(exc) from exc
                raise
            finally:
                self._append_pool.putconn(conn)  # a closed one is discarded and replaced by the pool
            return self._recorded(rows, returned)
        raw: psycopg.Connection[Any] | None = None
        try:
            with self.engine.connect() as sa_conn, sa_conn.begin():
                raw = _driver(sa_conn)
                returned = raw.execute(_INSERT, params).fetchall()
                recorded = self._recorded(rows, returned)
                self._apply_inline(sa_conn, projections, recorded)
        except (psycopg.OperationalError, sa.exc.OperationalError) as exc:
            if raw is not None and raw.closed:  # SQLAlchemy closes a connection it found broken
                raise _ConnectionLost(exc) from exc
            raise
        return recorded

    def _recorded(self, rows: list[PendingRow], returned: list[tuple]) -> list[RecordedEvent]:
        if len(returned) != len(rows):
            raise _VersionCheckFailed()
        if len(rows) == 1:
            row, (_, version, position, at, _n) = rows[0], returned[0]
            return [recorded_event(row.event_id, row.stream_id, version, position, row.type, row.schema_version,
                                   row.data, row.metadata, at if at.tzinfo is UTC else at.astimezone(UTC))]
        by_id = {r[0]: r for r in returned}
        out = []
        for row in rows:
            _, version, position, at, _n = by_id[row.event_id]
            out.append(recorded_event(row.event_id, row.stream_id, version, position, row.type, row.schema_version,
                                      row.data, row.metadata, at if at.tzinfo is UTC else at.astimezone(UTC)))
        return out

    def _already_stored(self, rows: list[PendingRow]) -> list[RecordedEvent] | None:
        return self._match_stored(rows, self.read_by_ids([r.event_id for r in rows]))

    def _versions(self, stream_ids: list[str]) -> dict[str, int]:
        with self.read_engine.connect() as conn:
            raw = _driver(conn)
            found = raw.execute(
                "SELECT stream_id, max(stream_version) FROM events WHERE stream_id = ANY(%s) GROUP BY stream_id",
                (stream_ids,),
            ).fetchall()
        return {s: v for s, v in found}

    @contextmanager
    def exclusive_transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})")
            yield conn

    # ------------------------------------------------------------------------------------------ reads
    def _query(self, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
        with self.read_engine.connect() as conn:
            raw = _driver(conn)
            fetched = raw.execute(sql, params).fetchall()
        return [self._decode(*r) for r in fetched]

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream_id = %s AND stream_version >= %s"
        params: list[Any] = [stream_id, from_version]
        if to_version is not None:
            sql += " AND stream_version <= %s"
            params.append(to_version)
        return self._query(sql + " ORDER BY stream_version", params)

    def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        types: Iterable[str] | None = None,
        streams: Iterable[str] | None = None,
        until_position: int | None = None,
    ) -> list[RecordedEvent]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE global_position > %s"
        params: list[Any] = [after_position]
        if until_position is not None:
            sql += " AND global_position <= %s"
            params.append(until_position)
        if types is not None:
            sql += " AND type = ANY(%s)"
            params.append(list(types))
        if streams is not None:
            sql += " AND stream_id = ANY(%s)"
            params.append(list(streams))
        sql += " ORDER BY global_position LIMIT %s"
        params.append(limit)
        return self._query(sql, params)

    def iter_category(self, category: str, until_position: int) -> Iterator[RecordedEvent]:
        with self.engine.connect() as conn:
            raw = _driver(conn)
            with raw.transaction():
                cursor = raw.cursor(name=f"category_{category}")
                cursor.itersize = 5000
                cursor.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE stream_id >= %s AND stream_id < %s"
                    " AND global_position <= %s ORDER BY stream_id, stream_version",
                    (f"{category}-", f"{category}.", until_position),
                )
                decode = self._decode
                for row in cursor:
                    yield decode(*row)
                cursor.close()

    def read_by_ids(self, event_ids: Sequence[uuid.UUID]) -> list[RecordedEvent]:
        return self._query(
            f"SELECT {_COLUMNS} FROM events WHERE event_id = ANY(%s) ORDER BY global_position",
            [list(event_ids)],
        )

    def stream_version(self, stream_id: str) -> int:
        return self._versions([stream_id]).get(stream_id, 0)

    def count(self, types: Iterable[str] | None = None) -> int:
        sql, params = "SELECT count(*) FROM events", []
        if types is not None:
            sql += " WHERE type = ANY(%s)"
            params.append(list(types))
        with self.read_engine.connect() as conn:
            raw = _driver(conn)
            [(n,)] = raw.execute(sql, params).fetchall()
        return int(n)

    def head_position(self) -> int:
        with self.read_engine.connect() as conn:
            raw = _driver(conn)
            [(head,)] = raw.execute("SELECT COALESCE(max(global_position), 0) FROM events").fetchall()
        return int(head)


def _driver(conn: sa.Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a checked-out SQLAlchemy connection (always there while checked out)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw


def _params(rows: list[PendingRow], appends: Sequence[StreamAppend]) -> dict[str, Any]:
    parts = [a for a in appends if a.events]
    return {
        "lock": APPEND_LOCK_KEY,
        "part_streams": [a.stream_id for a in parts],
        "part_expected": [expected_as_int(a.expected_version) for a in parts],
        "ids": [r.event_id for r in rows],
        "streams": [r.stream_id for r in rows],
        "offs": [r.offset for r in rows],
        "types": [r.type for r in rows],
        "svs": [r.schema_version for r in rows],
        "datas": [r.data_json for r in rows],
        "metas": [r.metadata_json for r in rows],
    }
