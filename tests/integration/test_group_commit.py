"""Group commit (events/group_commit.py) on both stores: appends that queue while another commits go as one
transaction, and each caller still gets its own result or error: a conflicting, failing or repeated append in
a group does not change what the others get.

Each test forms a group deterministically: it holds the store's append lock (``exclusive_transaction``), lets
appends take every commit slot (they wait for the lock), queues the appends under test behind them, and
releases.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from events.errors import ConcurrencyError
from events.store import EventStore
from events.types import ExpectedVersion, NewEvent, RecordedEvent, StreamAppend
from tests.support.sample_events import ItemAdded

TIMEOUT = 30.0


def added(n: int, item: str | None = None) -> NewEvent:
    return NewEvent(ItemAdded(item_id=item or f"item-{n}", quantity=n))


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


def in_one_group(store: EventStore, calls: Sequence[Sequence[StreamAppend]]) -> list[Any]:
    """Run each call's append in its own thread so that they all queue behind one leader and commit as one
    group; return each call's result (a list of events) or exception, in order."""
    committer = store._committer  # type: ignore[attr-defined]
    groups_before = committer.groups
    results: list[Any] = [None] * len(calls)

    def run(i: int, parts: Sequence[StreamAppend]) -> None:
        try:
            results[i] = store.append(*parts)
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            results[i] = exc

    # Commits that hold the slots (they wait for the lock this test holds): what follows queues behind them.
    leaders = [threading.Thread(target=lambda n=n: store.append(StreamAppend(f"cart-leader{n}", ExpectedVersion.ANY,
                                                                            [added(n)])))
               for n in range(committer.max_in_flight)]
    threads = [threading.Thread(target=run, args=(i, parts)) for i, parts in enumerate(calls)]
    with store.exclusive_transaction():
        for leader in leaders:
            leader.start()
        _wait(lambda: committer.in_flight == committer.max_in_flight, "every commit slot is taken")
        for i, t in enumerate(threads):  # one at a time: the group keeps the calls' order
            t.start()
            _wait(lambda n=i + 1: committer.waiting() == n, f"append {i} queues behind the leaders")
    for t in [*leaders, *threads]:
        t.join(TIMEOUT)
        assert not t.is_alive()
    assert committer.groups == groups_before + 1, "the queued appends did not commit as one group"
    return results


def test_a_conflicting_append_in_a_group_fails_alone_and_the_others_commit(store: EventStore) -> None:
    store.append(StreamAppend("cart-a", ExpectedVersion.NO_STREAM, [added(1)]))

    ok1, stale, ok2, multi = in_one_group(store, [
        [StreamAppend("cart-a", 1, [added(2)])],
        [StreamAppend("cart-a", 1, [added(3)])],  # the same expected version as the first: it loses
        [StreamAppend("cart-b", ExpectedVersion.NO_STREAM, [added(4), added(5)])],
        [StreamAppend("cart-c", ExpectedVersion.ANY, [added(6)]), StreamAppend("cart-a", 2, [added(7)])],
    ])

    assert isinstance(stale, ConcurrencyError), stale
    # Where the stream was when the refusal was decided: inside the group on SQLite (2), after it on
    # PostgreSQL, where a refused member is re-checked alone (3).
    assert (stale.stream_id, stale.expected) == ("cart-a", 1) and stale.actual in (2, 3)
    assert [e.stream_version for e in ok1] == [2]
    assert [e.stream_version for e in ok2] == [1, 2]
    assert [(e.stream_id, e.stream_version) for e in multi] == [("cart-c", 1), ("cart-a", 3)]
    assert [e.data["item_id"] for e in store.read_stream("cart-a")] == ["item-1", "item-2", "item-7"]
    assert store.read_stream("cart-b") == ok2
    positions = [e.global_position for e in store.read_all()]
    assert positions == sorted(set(positions))
    assert sorted(e.global_position for r in (ok1, ok2, multi) for e in r) == positions[-5:]


def test_a_multi_stream_append_refused_in_a_group_stores_none_of_its_streams(store: EventStore) -> None:
    store.append(StreamAppend("cart-a", ExpectedVersion.NO_STREAM, [added(1)]))

    refused, ok = in_one_group(store, [
        [StreamAppend("cart-new", ExpectedVersion.NO_STREAM, [added(2)]), StreamAppend("cart-a", 5, [added(3)])],
        [StreamAppend("cart-b", ExpectedVersion.ANY, [added(4)])],
    ])

    assert isinstance(refused, ConcurrencyError) and refused.stream_id == "cart-a"
    assert store.stream_version("cart-new") == 0
    assert [e.stream_version for e in ok] == [1]


def test_the_same_events_appended_twice_in_one_group_are_stored_once_and_both_callers_get_them(
    store: EventStore,
) -> None:
    events = [added(1), added(2)]

    first, second = in_one_group(store, [[StreamAppend("cart-a", ExpectedVersion.NO_STREAM, events)]] * 2)

    assert isinstance(first, list) and first == second
    assert store.read_stream("cart-a") == first


class _Poisoned:
    """An inline read model that fails on one item: its append must fail alone, and roll back alone."""

    name = "poisoned"

    def handles(self, type_name: str) -> bool:
        return type_name == "ItemAdded"

    def apply(self, conn: sa.Connection, events: Sequence[RecordedEvent]) -> None:
        if any(e.data["item_id"] == "poison" for e in events):
            raise RuntimeError("this read model refuses poison")
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS poisoned_seen (item TEXT)"))
        for e in events:
            conn.execute(sa.text("INSERT INTO poisoned_seen (item) VALUES (:i)"), {"i": e.data["item_id"]})


def test_an_append_whose_inline_projection_fails_in_a_group_fails_alone(store: EventStore) -> None:
    store.add_inline_projection(_Poisoned())
    store.append(StreamAppend("cart-0", ExpectedVersion.NO_STREAM, [added(0, "first")]))  # creates the table

    ok1, poisoned, ok2 = in_one_group(store, [
        [StreamAppend("cart-a", ExpectedVersion.NO_STREAM, [added(1, "apple")])],
        [StreamAppend("cart-b", ExpectedVersion.NO_STREAM, [added(2, "poison")])],
        [StreamAppend("cart-c", ExpectedVersion.NO_STREAM, [added(3, "pear")])],
    ])

    assert isinstance(poisoned, RuntimeError), poisoned
    assert store.stream_version("cart-b") == 0
    assert [e.data["item_id"] for e in ok1 + ok2] == ["apple", "pear"]
    with store.engine.connect() as conn:
        seen = sorted(r[0] for r in conn.execute(sa.text("SELECT item FROM poisoned_seen")))
    leaders = [f"item-{n}" for n in range(store._committer.max_in_flight)]  # type: ignore[attr-defined]
    assert seen == sorted(["apple", "first", *leaders, "pear"])  # never the poison
