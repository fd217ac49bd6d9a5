"""The SQLite event store: the embedded default.

SQLite has one writer at a time; every append opens with ``BEGIN IMMEDIATE`` so it holds the write lock
from its first read of stream versions to its commit. Positions are therefore assigned and committed in
order, and the same catch-up guarantee as PostgreSQL's holds. The database runs in WAL mode so readers never
block the writer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from events.group_commit import GroupCommitter, Member
from events.registry import EventRegistry
from events.store import EventStore, PendingRow
from events.types import RecordedEvent, StreamAppend, recorded_event

_COLUMNS = (
    "event_id, stream_id, stream_version, global_position, type, schema_version, data, metadata, recorded_at"
)


def create_sqlite_engine(url: str) -> sa.Engine:
    """An engine whose connections leave transactions to us (isolation_level=None) and run in WAL mode."""
    engine = sa.create_engine(
        url,
        connect_args={"isolation_level": None, "check_same_thread": False, "timeout": 60},
        pool_size=8,
        max_overflow=16,
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=60000")
        for attempt in range(100):
            # Switching a new file to WAL takes a lock the busy handler does not wait for; WAL is persistent,
            # so when another connection is switching it at this moment, wait and see it done.
            try:
                mode = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
                continue
            if mode == "wal":
                break
            time.sleep(0.05)
        dbapi_connection.execute("PRAGMA synchronous=FULL")

    return engine


def _to_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value)


class SqliteEventStore(EventStore):
    def __init__(self, engine: sa.Engine, registry: EventRegistry) -> None:
        super().__init__(engine, registry)
        # Writers of this process queue here instead of in SQLite's busy handler, which polls the lock with
        # sleeps of 1, 2, 5, 10, 15, 20 ... ms: a thread waiting behind a 1 ms write would lose tens of ms.
        # Other processes' writers still meet the busy handler.
        self._write_lock = threading.RLock()
        self._committer: GroupCommitter[tuple[Sequence[StreamAppend], list[PendingRow]]] = GroupCommitter(
            self._append_solo, self._commit_group)

    def append(self, *appends: StreamAppend) -> list[RecordedEvent]:
        rows = self._pending_rows(appends)
        if not rows:
            return []
        return self._committer.submit((appends, rows))

    def _append_solo(self, work: tuple[Sequence[StreamAppend], list[PendingRow]]) -> list[RecordedEvent]:
        with self.transaction() as conn:
            recorded = self._append_in(conn, *work)
        self._signal_appended(recorded)
        return recorded

    def _commit_group(self, members: Sequence[Member[tuple[Sequence[StreamAppend], list[PendingRow]]]]) -> None:
        """One write transaction (one fsync) for the group; each member in a savepoint, so a member refused
        (ConcurrencyError, IdempotencyConflict) or failing (an inline projection) is rolled back and answered
        alone. Under the write lock its checks are exact, so its error is final."""
        done: list[tuple[Member[Any], list[RecordedEvent] | None, Exception | None]] = []
        with self.transaction() as conn:
            raw = _driver(conn)
            for m in members:
                raw.execute("SAVEPOINT dart_member")
                try:
                    recorded = self._append_in(conn, *m.work)
                except sqlite3.Error:
                    raise  # the database, not this member: the group fails and each member goes alone
                except Exception as exc:  # noqa: BLE001 - this member's own error
                    raw.execute("ROLLBACK TO SAVEPOINT dart_member")
                    raw.execute("RELEASE SAVEPOINT dart_member")
                    done.append((m, None, exc))
                    continue
                raw.execute("RELEASE SAVEPOINT dart_member")
                done.append((m, recorded, None))
        every: list[RecordedEvent] = []
        for m, result, error in done:
            if error is not None:
                m.fail(error)
            else:
                m.answer(result)
                every += result or []
        if every:
            every.sort(key=lambda e: e.global_position)
            self._signal_appended(every)

    def _append_in(self, conn: sa.Connection, appends: Sequence[StreamAppend],
                   rows: list[PendingRow]) -> list[RecordedEvent]:
        """The append's statements inside the caller's write transaction."""
        projections = self._projections_for(rows)
        raw = _driver(conn)
        stored = self._already_stored(raw, rows)
        if stored is not None:
            return stored
        actual = self._versions(raw, [a.stream_id for a in appends])
        self._raise_version_conflict(appends, actual)
        now = datetime.now(UTC)
        stamp = now.isoformat()
        recorded: list[RecordedEvent] = []
        for row in rows:
            version = row.stream_version
            if version is None:
                version = actual.get(row.stream_id, 0) + row.offset
            (position,) = raw.execute(
                "INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data,"
                " metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING global_position",
                (
                    str(row.event_id),
                    row.stream_id,
                    version,
                    row.type,
                    row.schema_version,
                    row.data_json,
                    row.metadata_json,
                    stamp,
                ),
            ).fetchone()
            recorded.append(recorded_event(row.event_id, row.stream_id, version, position, row.type,
                                           row.schema_version, row.data, row.metadata, now))
        if projections:
            self._apply_inline(conn, projections, recorded)
        return recorded

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction holding SQLite's write lock from its start (BEGIN IMMEDIATE)."""
        with self._write_lock, self.engine.connect() as conn:
            raw = _driver(conn)
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            finally:
                if conn.in_transaction():
                    conn.commit()  # our COMMIT/ROLLBACK ended it; this only resets SQLAlchemy's state

    def _already_stored(self, raw: sqlite3.Connection, rows: list[PendingRow]) -> list[RecordedEvent] | None:
        ids = [str(r.event_id) for r in rows]
        found = raw.execute(
            f"SELECT {_COLUMNS} FROM events WHERE event_id IN ({','.join('?' * len(ids))}) ORDER BY global_position",
            ids,
        ).fetchall()
        return self._match_stored(rows, [self._decode_row(r) for r in found])

    @staticmethod
    def _versions(raw: sqlite3.Connection, stream_ids: list[str]) -> dict[str, int]:
        marks = ",".join("?" * len(stream_ids))
        found = raw.execute(
            f"SELECT stream_id, max(stream_version) FROM events WHERE stream_id IN ({marks}) GROUP BY stream_id",
            stream_ids,
        ).fetchall()
        return {s: v for s, v in found}

    # ------------------------------------------------------------------------------------------ reads
    def _decode_row(self, r: Sequence[Any]) -> RecordedEvent:
        return self._decode(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _to_datetime(r[8]))

    def _query(self, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
        with self.engine.connect() as conn:
            raw = _driver(conn)
            fetched = raw.execute(sql, params).fetchall()
        return [self._decode_row(r) for r in fetched]

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND stream_version >= ?"
        params: list[Any] = [stream_id, from_version]
        if to_version is not None:
            sql += " AND stream_version <= ?"
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
        sql = f"SELECT {_COLUMNS} FROM events WHERE global_position > ?"
        params: list[Any] = [after_position]
        if until_position is not None:
            sql += " AND global_position <= ?"
            params.append(until_position)
        for column, values in (("type", types), ("stream_id", streams)):
            if values is not None:
                values = list(values)
                if not values:
                    return []
                sql += f" AND {column} IN ({','.join('?' * len(values))})"
                params.extend(values)
        sql += " ORDER BY global_position LIMIT ?"
        params.append(limit)
        return self._query(sql, params)

    def iter_category(self, category: str, until_position: int) -> Iterator[RecordedEvent]:
        with self.engine.connect() as conn:
            raw = _driver(conn)
            cursor = raw.execute(
                f"SELECT {_COLUMNS} FROM events WHERE stream_id >= ? AND stream_id < ?"
                " AND global_position <= ? ORDER BY stream_id, stream_version",
                (f"{category}-", f"{category}.", until_position),
            )
            while rows := cursor.fetchmany(5000):
                for row in rows:
                    yield self._decode_row(row)

    def read_by_ids(self, event_ids: Sequence[uuid.UUID]) -> list[RecordedEvent]:
        if not event_ids:
            return []
        marks = ",".join("?" * len(event_ids))
        return self._query(
            f"SELECT {_COLUMNS} FROM events WHERE event_id IN ({marks}) ORDER BY global_position",
            [str(i) for i in event_ids],
        )

    def stream_version(self, stream_id: str) -> int:
        with self.engine.connect() as conn:
            return self._versions(_driver(conn), [stream_id]).get(stream_id, 0)

    def count(self, types: Iterable[str] | None = None) -> int:
        sql, params = "SELECT count(*) FROM events", []
        if types is not None:
            params = list(types)
            sql += f" WHERE type IN ({','.join('?' * len(params))})" if params else " WHERE 0"
        with self.engine.connect() as conn:
            (n,) = _driver(conn).execute(sql, params).fetchone()
        return int(n)

    def head_position(self) -> int:
        with self.engine.connect() as conn:
            raw = _driver(conn)
            (head,) = raw.execute("SELECT COALESCE(max(global_position), 0) FROM events").fetchone()
        return int(head)


def _driver(conn: sa.Connection) -> sqlite3.Connection:
    """The sqlite3 connection under a SQLAlchemy connection (reads skip SQLAlchemy's row machinery)."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw
