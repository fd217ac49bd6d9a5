"""The PostgreSQL store's connections survive a server restart, and the append pool stays bounded.

A restart is simulated by terminating every server backend of the test's database (``pg_terminate_backend``
is what a restart does to idle connections; the shared server itself is never stopped). No append may fail
because a pooled connection died while idle, and none may be lost or applied twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from events.group_commit import MAX_IN_FLIGHT
from events.postgres import APPEND_POOL_SIZE, PostgresEventStore
from events.registry import EventRegistry
from events.types import ExpectedVersion, NewEvent, RecordedEvent, StreamAppend
from tests.support.sample_events import ItemAdded

pytestmark = pytest.mark.postgres

TIMEOUT = 30.0

# Backends of the test database blocked in an append, i.e. waiting for the store's ordering lock.
_WAITING_ON_APPEND_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
    " AND wait_event = 'advisory'"
)


class ItemCount:
    """An inline projection: appends of ItemAdded then run in a transaction through the SQLAlchemy engine
    instead of the autocommit append pool."""

    name = "item_count"

    def handles(self, type_name: str) -> bool:
        return type_name == "ItemAdded"

    def apply(self, conn: sa.Connection, events: Sequence[RecordedEvent]) -> None:
        conn.execute(sa.text("UPDATE item_count SET n = n + :k"), {"k": len(events)})


def open_store_with(make_store, url: str, registry: EventRegistry, path: str) -> PostgresEventStore:
    """A store whose ItemAdded appends take the given path: "autocommit" (the append pool) or "inline"."""
    store = make_store(url, registry)
    assert isinstance(store, PostgresEventStore)
    if path == "inline":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE item_count (n int NOT NULL)")
            conn.exec_driver_sql("INSERT INTO item_count VALUES (0)")
        store.add_inline_projection(ItemCount())
    return store


def assert_projected_once_each(store: PostgresEventStore, path: str) -> None:
    if path == "inline":
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT n FROM item_count").scalar_one() == store.count()


def database_name(url: str) -> str:
    name = make_url(url).database
    assert name
    return name


def await_condition(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` until it holds (the server offers no notification for backends starting or ending)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}")
        time.sleep(0.01)


def count_rows(server_url: str, sql: str, *params: object) -> int:
    libpq_url = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def added(n: int) -> NewEvent:
    return NewEvent(ItemAdded(item_id=f"item-{n}", quantity=n))


def append_while_the_lock_is_held(
    store: PostgresEventStore, server_url: str, appends: list[StreamAppend], in_server_at_once: int,
    while_blocked: Callable[[], None] = lambda: None,
) -> list[list[RecordedEvent]]:
    """Run each append in its own thread while this test holds the store's ordering lock; release the lock
    once ``in_server_at_once`` of them wait for it inside the server and the others wait in the store's
    group committer (group commit: one append, or one group, of a process in the server at a time), and
    ``while_blocked`` has run; return what each append returned."""
    db = database_name(str(store.engine.url))
    results: list[list[RecordedEvent] | BaseException | None] = [None] * len(appends)

    def run(i: int) -> None:
        try:
            results[i] = store.append(appends[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(appends))]
    with store.exclusive_transaction():
        for t in threads:
            t.start()
        await_condition(lambda: count_rows(server_url, _WAITING_ON_APPEND_LOCK, db) >= in_server_at_once
                        and store._committer.waiting() >= len(appends) - in_server_at_once,
                        f"{in_server_at_once} appends wait for the ordering lock, the rest in the process")
        while_blocked()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive(), "an append did not finish"
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return [r for r in results if isinstance(r, list)]


def terminate_every_backend(server_url: str, db: str) -> None:
    """What a server restart does to the store's idle connections, without stopping the shared server."""
    assert count_rows(server_url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                      " WHERE datname = %s", db) > 0
    await_condition(lambda: count_rows(server_url, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                       db) == 0, "every backend of the test database has exited")


@pytest.mark.parametrize("path", ["autocommit", "inline"])
def test_appends_and_reads_after_every_server_connection_was_terminated_succeed_once_each(
    pg_url: str, pg_server_url: str, registry: EventRegistry, make_store, path: str
) -> None:
    store = open_store_with(make_store, pg_url, registry, path)
    db = database_name(pg_url)
    # Idle connections in the append pool and in the engine's pool (two appends alone, then the two that
    # queued behind them as one group; reads).
    before = append_while_the_lock_is_held(
        store, pg_server_url,
        [StreamAppend(f"cart-warm{i}", ExpectedVersion.NO_STREAM, [added(i)]) for i in range(4)], MAX_IN_FLIGHT,
    )
    assert len(before) == 4
    assert [e.stream_version for e in store.read_stream("cart-warm0")] == [1]

    terminate_every_backend(pg_server_url, db)

    # More appends than there were idle connections, on every statement the store has: one event at an
    # exact version, one event at ANY version, several events; then reads.
    stream = f"cart-{uuid.uuid4().hex[:8]}"
    returned: list[RecordedEvent] = []
    for n in range(6):
        returned += store.append(StreamAppend(stream, n, [added(n)]))
    returned += store.append(StreamAppend(stream, ExpectedVersion.ANY, [added(6)]))
    returned += store.append(StreamAppend(stream, 7, [added(7), added(8)]),
                             StreamAppend("cart-other", ExpectedVersion.NO_STREAM, [added(9)]))

    stored = store.read_stream(stream)
    assert [e.stream_version for e in stored] == list(range(1, 10))
    assert [e.data["item_id"] for e in stored] == [f"item-{n}" for n in range(9)]
    assert [e.event_id for e in stored] == [e.event_id for e in returned if e.stream_id == stream]
    assert store.stream_version(stream) == 9
    everything = store.read_all()
    positions = [e.global_position for e in everything]
    assert positions == sorted(set(positions)), "a position repeated or went backwards"
    assert len(everything) == 4 + 10, "an append was lost or applied twice"
    assert store.count() == 14
    assert store.head_position() == positions[-1]
    assert_projected_once_each(store, path)


@pytest.mark.parametrize("path", ["autocommit", "inline"])
def test_an_append_whose_connection_dies_while_it_waits_in_the_server_is_applied_once(
    pg_url: str, pg_server_url: str, registry: EventRegistry, make_store, path: str
) -> None:
    store = open_store_with(make_store, pg_url, registry, path)
    db = database_name(pg_url)
    stream = f"cart-{uuid.uuid4().hex[:8]}"
    store.append(StreamAppend(stream, ExpectedVersion.NO_STREAM, [added(0)]))

    def terminate_the_waiting_append() -> None:
        # The statement was sent and is waiting for the lock: the server rolls it back as it terminates.
        assert count_rows(pg_server_url,
                          "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s"
                          " AND wait_event_type = 'Lock' AND wait_event = 'advisory'", db) == 1

    (recorded,) = append_while_the_lock_is_held(
        store, pg_server_url, [StreamAppend(stream, 1, [added(1)])], 1, terminate_the_waiting_append,
    )
    assert [e.stream_version for e in recorded] == [2]
    stored = store.read_stream(stream)
    assert [(e.stream_version, e.event_id) for e in stored][1:] == [(2, recorded[0].event_id)]
    assert store.count() == 2
    assert_projected_once_each(store, path)


def test_concurrent_appenders_of_one_process_wait_in_the_process_and_commit_as_groups(
    pg_url: str, pg_server_url: str, registry: EventRegistry, make_store
) -> None:
    store = make_store(pg_url, registry)
    assert isinstance(store, PostgresEventStore)
    db = database_name(pg_url)
    appenders = 2 * APPEND_POOL_SIZE
    peak = 0

    def watch_the_bound() -> None:
        # MAX_IN_FLIGHT appends block on the lock we hold; the others must wait in the process (for the group
        # commits that follow), not each in a connection of its own. Watch a while for any that got through.
        nonlocal peak
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            peak = max(peak, count_rows(pg_server_url, _WAITING_ON_APPEND_LOCK, db))
            assert peak <= MAX_IN_FLIGHT, f"{peak} appends of one process wait in the server"

    results = append_while_the_lock_is_held(
        store, pg_server_url,
        [StreamAppend(f"cart-{i}", ExpectedVersion.ANY, [added(i)]) for i in range(appenders)],
        MAX_IN_FLIGHT, watch_the_bound,
    )
    assert peak == MAX_IN_FLIGHT
    assert store._committer.groups >= 1, "the appends that queued were not committed as a group"
    assert len(results) == appenders
    assert store.count() == appenders
    positions = sorted(e.global_position for r in results for e in r)
    assert len(set(positions)) == appenders
