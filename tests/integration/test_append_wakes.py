"""Followers wake at once for appends (issue 16, "no poll floors"): on PostgreSQL for another process's
appends through LISTEN/NOTIFY (a second store object on the same database stands for another process: it
shares nothing with the first but the server), on SQLite for this process's appends.

Every wait here is given a timeout far longer than the test's own patience would ever need, and no poll
shorter than it: an event can only be seen in time through the wake-up. The assertions are on what was
seen, never on how fast.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from bench.harness import pg
from events.pg_listen import parse_payload
from events.store import EventStore
from events.subscription import CatchUpSubscription
from events.types import ExpectedVersion, NewEvent, RecordedEvent, StreamAppend
from tests.support.sample_events import CartCheckedOut, ItemAdded

LONG = 60.0  # any poll or timeout in these tests: longer than the test waits for anything


def added(n: int) -> NewEvent:
    return NewEvent(ItemAdded(item_id=f"item-{n}", quantity=n))


def waiter(store: EventStore, after: int, types: Sequence[str] | None = None) -> tuple[threading.Thread, list[bool]]:
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(store.wait_for_append(after, LONG, types)), daemon=True)
    thread.start()
    return thread, woke


def listening(store: EventStore) -> None:
    """Start the store's LISTEN connection (the first wait does) and wait until it is in force."""
    store.wait_for_append(1 << 40, 0.0)
    listener = store._listener  # type: ignore[attr-defined]
    assert listener is not None and listener.listening.wait(LONG)


@pytest.mark.postgres
def test_a_wait_on_one_store_wakes_for_an_append_through_another(pg_url: str, registry, make_store) -> None:
    reader, writer = make_store(pg_url, registry), make_store(pg_url, registry, migrate=False)
    writer.append(StreamAppend("cart-1", ExpectedVersion.NO_STREAM, [added(1)]))
    listening(reader)
    head = reader.head_position()
    thread, woke = waiter(reader, head)

    writer.append(StreamAppend("cart-1", 1, [added(2)]))
    thread.join(LONG / 2)

    assert woke == [True], "the reader was not woken by the other store's append"


@pytest.mark.postgres
def test_a_typed_wait_wakes_for_its_type_from_another_store(pg_url: str, registry, make_store) -> None:
    reader, writer = make_store(pg_url, registry), make_store(pg_url, registry, migrate=False)
    listening(reader)
    thread, woke = waiter(reader, reader.head_position(), ["CartCheckedOut"])

    writer.append(StreamAppend("cart-1", ExpectedVersion.NO_STREAM, [added(1)]))
    writer.append(StreamAppend("cart-2", ExpectedVersion.NO_STREAM, [added(2), added(3)]),
                  StreamAppend("cart-3", ExpectedVersion.NO_STREAM, [NewEvent(CartCheckedOut(total=3.0))]))
    thread.join(LONG / 2)

    assert woke == [True]
    checked_out = [e for e in reader.read_all() if e.type == "CartCheckedOut"]
    item_added = [e for e in reader.read_all() if e.type == "ItemAdded"]
    # Each type's own highest position, not the append's: a typed reader at its last event sleeps on.
    assert reader._type_heads["CartCheckedOut"] == checked_out[-1].global_position  # type: ignore[attr-defined]
    assert reader._type_heads["ItemAdded"] == item_added[-1].global_position  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_a_catch_up_subscription_handles_another_stores_appends_without_polling(
    pg_url: str, registry, make_store
) -> None:
    reader, writer = make_store(pg_url, registry), make_store(pg_url, registry, migrate=False)
    seen: list[RecordedEvent] = []
    arrived = threading.Event()

    def handle(events: Sequence[RecordedEvent]) -> None:
        seen.extend(events)
        if len(seen) >= 3:
            arrived.set()

    subscription = CatchUpSubscription(reader, "wakes", handle, poll_interval=LONG)
    thread, stop = subscription.start()
    try:
        listening(reader)
        for n in range(3):  # each after the reader went back to waiting
            writer.append(StreamAppend(f"cart-{n}", ExpectedVersion.NO_STREAM, [added(n)]))
        assert arrived.wait(LONG / 2), f"the subscription saw {len(seen)} of 3 events"
    finally:
        stop.set()
        thread.join(LONG)
    assert [e.stream_id for e in seen] == ["cart-0", "cart-1", "cart-2"]


@pytest.mark.postgres
def test_every_append_path_notifies_in_its_transaction_with_the_head_and_the_types(
    pg_url: str, registry, make_store
) -> None:
    store = make_store(pg_url, registry)
    with pg.connect(pg_url) as listener:
        listener.autocommit = True
        listener.execute("LISTEN dart_events")
        store.append(StreamAppend("cart-1", ExpectedVersion.NO_STREAM, [added(1)]))  # one event, exact
        store.append(StreamAppend("cart-1", ExpectedVersion.ANY, [added(2)]))  # one event, ANY
        store.append(StreamAppend("cart-2", ExpectedVersion.NO_STREAM, [added(3), added(4)]))  # arrays
        heard = [parse_payload(n.payload) for n in listener.notifies(timeout=LONG, stop_after=3)]
        heard += [parse_payload(n.payload) for n in listener.notifies(timeout=0.2)]  # and no more
    positions = [e.global_position for e in store.read_all()]
    # One notification per append (the two-event one: its last position), none per event.
    assert heard == [(positions[0], {"ItemAdded": positions[0]}), (positions[1], {"ItemAdded": positions[1]}),
                     (positions[3], {"ItemAdded": positions[3]})]


def test_on_sqlite_this_process_appends_wake_a_waiting_reader(store: EventStore) -> None:
    store.append(StreamAppend("cart-1", ExpectedVersion.NO_STREAM, [added(1)]))
    thread, woke = waiter(store, store.head_position())

    store.append(StreamAppend("cart-1", 1, [added(2)]))
    thread.join(LONG / 2)

    assert woke == [True]
