"""Group commit on PostgreSQL (events/group_commit.py says when a group forms).

One transaction per group: the global-order lock first, then the members' statements, then the NOTIFY and
the COMMIT. Without inline projections the group is one psycopg pipeline on an append connection (one round
trip: BEGIN, the lock, one statement for every one-event member and one per larger member, the NOTIFY and
COMMIT). With inline projections, each member's insert is followed by its projections' statements; a
projection that raises fails the group, and every member is then retried alone, so only the failing one
fails.

A member's statement never raises for the reasons an append is refused: it inserts every one of its rows or
none (``WHERE ok``), checking its expected versions and that its event ids are new. Under the lock, taken at
the start of the transaction, every statement's snapshot is fresh (READ COMMITTED takes one per statement, and
every earlier holder of the lock committed before releasing it), so those checks are exact. A refused member
(no rows) is left unsettled: after the group commits it is retried alone, where the ordinary path tells a
stale expected version (ConcurrencyError) from an idempotent re-append (the stored events). Anything else
failing in the group (a lost connection, a statement error) fails the group, and every member is retried
alone: one that did commit is then found stored by its event ids.

Gap-free order holds as for a single append: every position is drawn under the lock, and the lock is held
until the group's commit is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from events.group_commit import Member
from events.pg_listen import CHANNEL, NOTIFY_FROM_INS
from events.types import RecordedEvent

if TYPE_CHECKING:
    from events.postgres import PostgresEventStore, Work

GROUP_INSERT = """
WITH v AS MATERIALIZED (
        SELECT s.stream_id, s.expected,
               COALESCE((SELECT e.stream_version FROM events e WHERE e.stream_id = s.stream_id
                         ORDER BY e.stream_version DESC LIMIT 1), 0) AS current
        FROM unnest(%(part_streams)b::text[], %(part_expected)b::int[]) AS s(stream_id, expected)),
     ok AS MATERIALIZED (
        SELECT bool_and(v.expected IS NULL OR v.expected = v.current)
               AND NOT EXISTS (SELECT 1 FROM events WHERE event_id = ANY(%(ids)b::uuid[])) AS ok
        FROM v)
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at)
SELECT r.event_id, r.stream_id, v.current + r.off, r.type, r.schema_version, r.data::jsonb, r.metadata::jsonb,
       clock_timestamp()
FROM unnest(%(ids)b::uuid[], %(streams)b::text[], %(offs)b::int[], %(types)b::text[], %(svs)b::int[],
            %(datas)b::text[], %(metas)b::text[]) WITH ORDINALITY
       AS r(event_id, stream_id, off, type, schema_version, data, metadata, ord)
JOIN v ON v.stream_id = r.stream_id
CROSS JOIN ok
WHERE ok.ok
ORDER BY r.ord
RETURNING event_id, stream_version, global_position, recorded_at, NULL
"""

# The group's one notification: the highest position of each type it appended (and of all), under the lock.
GROUP_NOTIFY = (f"SELECT pg_notify('{CHANNEL}', (SELECT COALESCE(max(p), 0)::text || ' ' || "
                "COALESCE(string_agg(t || ':' || p, ','), '') FROM (SELECT type AS t, max(global_position) AS p "
                "FROM events WHERE event_id = ANY(%s::uuid[]) GROUP BY type) AS heads))")


# Every one-event member of a group in one statement. A member is refused (no row back, nothing raised) when
# its stream is not at its expected version: the row's version is taken (ON CONFLICT DO NOTHING on the
# (stream, version) index), or the version below it is missing (the EXISTS); or when its event id is stored
# (the event id index). A one-event member is all or nothing by itself. Two members of one stream in one
# group: the second does not see the first's row in the same statement and is refused, then retried alone.
def _singles_insert(source: str, last: str) -> str:
    """The insert of every one-event member, its rows read ``FROM <source>unnest(...)``, returning ``last``
    after the columns every append returns."""
    return f"""
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at)
SELECT r.event_id, r.stream_id,
       COALESCE(r.expected, (SELECT e.stream_version FROM events e WHERE e.stream_id = r.stream_id
                             ORDER BY e.stream_version DESC LIMIT 1), 0) + 1,
       r.type, r.schema_version, r.data::jsonb, r.metadata::jsonb, clock_timestamp()
FROM {source}unnest(%(ids)b::uuid[], %(streams)b::text[], %(expected)b::int[], %(types)b::text[],
            %(svs)b::int[], %(datas)b::text[], %(metas)b::text[]) WITH ORDINALITY
       AS r(event_id, stream_id, expected, type, schema_version, data, metadata, ord)
WHERE r.expected IS NULL OR r.expected = 0
   OR EXISTS (SELECT 1 FROM events e WHERE e.stream_id = r.stream_id AND e.stream_version = r.expected)
ORDER BY r.ord
ON CONFLICT DO NOTHING
RETURNING event_id, stream_version, global_position, recorded_at, {last}
"""


GROUP_SINGLES = _singles_insert("", "NULL")


# A group of one-event members only: the same insert as one autocommit statement with the lock inside it (as
# the one-event solo statements): one statement, one round trip, no transaction of our own. Its snapshot is
# taken before the lock is granted, so a commit that got in between can only make a member refused wrongly
# (a stale version check): the unique indexes still refuse every real conflict, and a refused member is
# retried alone. Positions are drawn after the lock, as for any append.
GROUP_SINGLES_LOCKED = f"""
WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock(%(lock)s) AS locked),
     ins AS ({_singles_insert("l, ", "type")})
SELECT event_id, stream_version, global_position, recorded_at, {NOTIFY_FROM_INS}
FROM ins
"""


def _singles_params(members: Sequence[Member[Work]]) -> dict[str, Any]:
    rows = [m.work.rows[0] for m in members]
    return {
        "ids": [r.event_id for r in rows], "streams": [r.stream_id for r in rows],
        "expected": [m.work.params["part_expected"][0] for m in members],
        "types": [r.type for r in rows], "svs": [r.schema_version for r in rows],
        "datas": [r.data_json for r in rows], "metas": [r.metadata_json for r in rows],
    }


def commit_group(store: PostgresEventStore, members: Sequence[Member[Work]], lock_key: int,
                 group_params: Any) -> None:
    """Commit the members in one transaction; answer those committed, leave refused ones unsettled."""
    if any(m.work.projections for m in members):
        done = _with_projections(store, members, lock_key, group_params)
    else:
        done = _plain(store, members, lock_key, group_params)
    # Committed: answer every member that got its rows in.
    for m, recorded in done:
        m.answer(recorded)
    every = [e for _, recorded in done for e in recorded]
    if every:
        every.sort(key=lambda e: e.global_position)
        store._signal_appended(every)


def _ids(members: Sequence[Member[Work]]) -> list[Any]:
    return [r.event_id for m in members for r in m.work.rows]


def _plain(store: PostgresEventStore, members: Sequence[Member[Work]], lock_key: int,
           group_params: Any) -> list[tuple[Member[Work], list[RecordedEvent]]]:
    """No inline projections: one pipeline on an append connection (autocommit, so BEGIN and COMMIT are
    ours): one round trip for the whole group."""
    singles = [m for m in members if len(m.work.rows) == 1]
    others = [m for m in members if len(m.work.rows) > 1]
    done: list[tuple[Member[Work], list[RecordedEvent]]] = []
    conn = store._borrow()
    if not others:
        try:
            cursor = conn.append_cursor
            cursor.execute(GROUP_SINGLES_LOCKED, {**_singles_params(singles), "lock": lock_key})
            by_id = {r[0]: r for r in cursor.fetchall()}
        finally:
            store._append_pool.putconn(conn)
        for m in singles:
            row = by_id.get(m.work.rows[0].event_id)
            if row is not None:
                done.append((m, store._recorded(m.work.rows, [row[:4] + (None,)])))
        return done
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            single_cursor = conn.cursor()
            if singles:
                single_cursor.execute(GROUP_SINGLES, _singles_params(singles))
            cursors = []
            for m in others:
                cursor = conn.cursor()
                cursor.execute(GROUP_INSERT, group_params(m.work))
                cursors.append(cursor)
            conn.execute(GROUP_NOTIFY, (_ids(members),))
            conn.execute("COMMIT")
        if singles:
            by_id = {r[0]: r for r in single_cursor.fetchall()}
            for m in singles:
                row = by_id.get(m.work.rows[0].event_id)
                if row is not None:
                    done.append((m, store._recorded(m.work.rows, [row])))
        for m, cursor in zip(others, cursors):
            returned = cursor.fetchall()
            if returned:
                done.append((m, store._recorded(m.work.rows, returned)))
    except BaseException:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                conn.close()
        raise
    finally:
        store._append_pool.putconn(conn)
    return done


def _with_projections(store: PostgresEventStore, members: Sequence[Member[Work]], lock_key: int,
                      group_params: Any) -> list[tuple[Member[Work], list[RecordedEvent]]]:
    """Members with inline projections (and any others) in one transaction on a SQLAlchemy connection."""
    plain = [m for m in members if not m.work.projections]
    projected = [m for m in members if m.work.projections]
    done: list[tuple[Member[Work], list[RecordedEvent]]] = []
    with store.engine.connect() as sa_conn, sa_conn.begin():
        raw = sa_conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        cursors = []
        with raw.pipeline():
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            for m in plain:
                cursor = raw.cursor()
                cursor.execute(GROUP_INSERT, group_params(m.work))
                cursors.append(cursor)
        for m, cursor in zip(plain, cursors):
            returned = cursor.fetchall()
            if returned:
                done.append((m, store._recorded(m.work.rows, returned)))
        for m in projected:
            # No savepoint per member (two more round trips each): a projection failing is a bug, not a
            # refusal, and fails the whole group, whose members then go alone (the failing one fails alone).
            returned = raw.execute(GROUP_INSERT, group_params(m.work)).fetchall()
            if returned:
                recorded = store._recorded(m.work.rows, returned)
                store._apply_inline(sa_conn, m.work.projections, recorded)
                done.append((m, recorded))
        raw.execute(GROUP_NOTIFY, (_ids(members),))
    return done
