"""The event store contract (design.md §3), run against SQLite and PostgreSQL through the ``store`` fixture.

Every test runs twice: ``[sqlite]`` and ``[postgres]`` (the latter skipped without DART_TEST_DATABASE_URL).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql

from events.errors import ConcurrencyError, EventSchemaError, IdempotencyConflict, UnknownEventType
from events.postgres import APPEND_LOCK_KEY
from events.store import ANY_RETRIES, EventStore
from events.types import ExpectedVersion, Metadata, NewEvent, RawEvent, StreamAppend
from bench.harness import pg
from tests.support.sample_events import CartCheckedOut, ItemAdded, ItemRemoved, NeverRegistered
from tests.support.stores import everything, snapshot

ANY = ExpectedVersion.ANY
NO_STREAM = ExpectedVersion.NO_STREAM
THREAD_TIMEOUT = 60.0


def added(n: int, **extra: Any) -> ItemAdded:
    return ItemAdded(item_id=f"item-{n}", quantity=n, **extra)


def fill(store: EventStore, stream: str, count: int, start: int = 1) -> None:
    """Append ``count`` ItemAdded events to ``stream`` (one append, expected version ANY)."""
    store.append(StreamAppend(stream, ANY, [added(i) for i in range(start, start + count)]))


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` on ``count`` threads released together by a barrier; wait for all of them."""
    barrier = threading.Barrier(count)

    def body(i: int) -> None:
        barrier.wait(timeout=THREAD_TIMEOUT)
        target(i)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(THREAD_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a writer thread did not finish in time"


# ----------------------------------------------------------------------------------- append and envelope


def test_append_to_new_stream_records_the_full_envelope_and_reads_it_back(store: EventStore) -> None:
    first = ItemAdded(item_id="A1", quantity=2, price=9.5, tags=["red", "big"], note=None)
    details = {"lines": [1, 2], "coupon": None, "x": {"y": "z"}}
    second = CartCheckedOut(total=19.0, express=True, details=details)
    meta = Metadata(actor="alice", correlation_id="corr-1", causation_id="cause-1")
    ids = [uuid.uuid4(), uuid.uuid4()]
    before = datetime.now(UTC)

    recorded = store.append(
        StreamAppend(
            "cart-42",
            NO_STREAM,
            [NewEvent(first, meta, ids[0]), NewEvent(second, meta, ids[1])],
        )
    )
    after = datetime.now(UTC)

    assert [e.event_id for e in recorded] == ids
    assert [e.stream_id for e in recorded] == ["cart-42", "cart-42"]
    assert [e.stream_version for e in recorded] == [1, 2]
    assert recorded[0].global_position >= 1
    assert recorded[1].global_position > recorded[0].global_position
    assert [e.type for e in recorded] == ["ItemAdded", "CartCheckedOut"]
    assert [e.schema_version for e in recorded] == [1, 1]
    assert recorded[0].data == {
        "item_id": "A1", "quantity": 2, "price": 9.5, "tags": ["red", "big"], "note": None
    }
    assert recorded[1].data == {"total": 19.0, "express": True, "details": details}
    for event in recorded:
        assert event.metadata == {"actor": "alice", "correlation_id": "corr-1", "causation_id": "cause-1"}
        assert event.recorded_at.tzinfo is not None
        assert event.recorded_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=5) <= event.recorded_at <= after + timedelta(seconds=5)
    assert recorded[0].category == "cart" and recorded[0].entity_id == "42"

    # What is read back is exactly what the append returned, through every read path.
    assert store.read_stream("cart-42") == recorded
    assert store.read_all() == recorded
    assert store.read_by_ids(list(reversed(ids))) == recorded
    for event in store.read_stream("cart-42"):
        assert event.recorded_at.utcoffset() == timedelta(0)
    assert [store.registry.decode(e.type, e.data) for e in store.read_stream("cart-42")] == [first, second]
    assert store.stream_version("cart-42") == 2
    assert store.head_position() == recorded[-1].global_position


def test_metadata_defaults_to_the_system_actor(store: EventStore) -> None:
    (event,) = store.append(StreamAppend("cart-1", NO_STREAM, [added(1)]))

    assert event.metadata == {"actor": "system", "correlation_id": None, "causation_id": None}
    assert store.read_stream("cart-1")[0].metadata == event.metadata


def test_raw_event_of_a_registered_type_is_stored_like_its_class(store: EventStore) -> None:
    (event,) = store.append(
        StreamAppend("cart-1", NO_STREAM, [RawEvent("ItemRemoved", {"item_id": "A1", "reason": "broken"})])
    )

    (stored,) = store.read_stream("cart-1")
    assert stored == event
    assert (stored.type, stored.schema_version) == ("ItemRemoved", 1)
    assert store.registry.decode(stored.type, stored.data) == ItemRemoved(item_id="A1", reason="broken")


def test_empty_append_stores_nothing_and_returns_nothing(store: EventStore) -> None:
    assert store.append(StreamAppend("cart-1", NO_STREAM, [])) == []
    assert store.head_position() == 0
    assert store.stream_version("cart-1") == 0


# ------------------------------------------------------------------------------------- expected versions


def test_no_stream_expectation_creates_a_stream(store: EventStore) -> None:
    recorded = store.append(StreamAppend("cart-1", NO_STREAM, [added(1), added(2)]))

    assert [e.stream_version for e in recorded] == [1, 2]
    assert store.stream_version("cart-1") == 2


def test_exact_expected_version_appends_after_that_version(store: EventStore) -> None:
    store.append(StreamAppend("cart-1", 0, [added(1)]))
    recorded = store.append(StreamAppend("cart-1", 1, [added(2), added(3)]))
    recorded += store.append(StreamAppend("cart-1", 3, [added(4)]))

    assert [e.stream_version for e in recorded] == [2, 3, 4]
    assert [e.data["quantity"] for e in store.read_stream("cart-1")] == [1, 2, 3, 4]


def test_any_expected_version_appends_to_new_and_existing_streams(store: EventStore) -> None:
    first = store.append(StreamAppend("cart-1", ANY, [added(1)]))
    second = store.append(StreamAppend("cart-1", ANY, [added(2), added(3)]))

    assert [e.stream_version for e in first + second] == [1, 2, 3]
    assert store.stream_version("cart-1") == 3


@pytest.mark.parametrize(
    "expected, shown",
    [(1, "1"), (3, "3"), (0, "0"), (NO_STREAM, "no stream")],
    ids=["behind", "ahead", "zero", "no-stream"],
)
def test_wrong_expected_version_raises_concurrency_error_and_changes_nothing(
    store: EventStore, expected: Any, shown: str
) -> None:
    fill(store, "cart-1", 2)
    fill(store, "cart-2", 1)
    before = snapshot(store)

    with pytest.raises(ConcurrencyError) as caught:
        store.append(StreamAppend("cart-1", expected, [added(9)]))

    error = caught.value
    assert (error.stream_id, error.expected, error.actual) == ("cart-1", expected, 2)
    assert "cart-1" in str(error) and shown in str(error) and "2" in str(error)
    assert snapshot(store) == before
    assert store.stream_version("cart-1") == 2


def test_exact_expected_version_on_a_missing_stream_raises_with_actual_zero(store: EventStore) -> None:
    with pytest.raises(ConcurrencyError) as caught:
        store.append(StreamAppend("cart-9", 4, [added(1)]))

    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("cart-9", 4, 0)
    assert store.head_position() == 0
    assert store.read_stream("cart-9") == []


@pytest.mark.parametrize("expected", [-1, "3", 1.0, True])
def test_malformed_expected_version_is_refused_before_storing(store: EventStore, expected: Any) -> None:
    with pytest.raises(ValueError):
        store.append(StreamAppend("cart-1", expected, [added(1)]))
    assert store.head_position() == 0


# -------------------------------------------------------------------------------- multi-stream appends


def test_multi_stream_append_commits_every_stream_in_one_append(store: EventStore) -> None:
    fill(store, "cart-2", 1)

    recorded = store.append(
        StreamAppend("cart-1", NO_STREAM, [added(1), added(2)]),
        StreamAppend("cart-2", 1, [ItemRemoved(item_id="item-1")]),
    )

    assert [(e.stream_id, e.stream_version) for e in recorded] == [
        ("cart-1", 1), ("cart-1", 2), ("cart-2", 2)
    ]
    positions = [e.global_position for e in recorded]
    assert positions == sorted(positions) and len(set(positions)) == 3
    assert store.read_all(after_position=recorded[0].global_position - 1) == recorded


@pytest.mark.parametrize("stale", ["first", "second"])
def test_multi_stream_append_with_one_wrong_expected_version_stores_nothing(
    store: EventStore, stale: str
) -> None:
    fill(store, "cart-1", 1)
    fill(store, "cart-2", 2)
    before = snapshot(store)
    parts = {
        "first": (StreamAppend("cart-1", 0, [added(5)]), StreamAppend("cart-2", 2, [added(6)])),
        "second": (StreamAppend("cart-1", 1, [added(5)]), StreamAppend("cart-2", 1, [added(6)])),
    }[stale]

    with pytest.raises(ConcurrencyError) as caught:
        store.append(*parts, StreamAppend("cart-3", NO_STREAM, [added(7)]))

    assert caught.value.stream_id == ("cart-1" if stale == "first" else "cart-2")
    assert snapshot(store) == before
    assert store.read_stream("cart-3") == []
    assert (store.stream_version("cart-1"), store.stream_version("cart-2")) == (1, 2)


def test_multi_stream_append_with_an_invalid_event_in_one_stream_stores_nothing(store: EventStore) -> None:
    with pytest.raises(EventSchemaError):
        store.append(
            StreamAppend("cart-1", NO_STREAM, [added(1)]),
            StreamAppend("cart-2", NO_STREAM, [RawEvent("ItemAdded", {"item_id": "x", "quantity": "many"})]),
        )
    assert store.head_position() == 0
    assert store.read_stream("cart-1") == []


def test_same_stream_twice_in_one_append_is_refused(store: EventStore) -> None:
    with pytest.raises(ValueError):
        store.append(StreamAppend("cart-1", ANY, [added(1)]), StreamAppend("cart-1", ANY, [added(2)]))
    assert store.head_position() == 0


# ----------------------------------------------------------------------------------------- idempotency


@pytest.mark.parametrize("expected", [NO_STREAM, 0, ANY], ids=["no-stream", "exact", "any"])
def test_reappending_the_same_event_ids_returns_the_stored_result_and_appends_nothing(
    store: EventStore, expected: Any
) -> None:
    batch = [NewEvent(added(1)), NewEvent(added(2), Metadata(actor="bob"))]
    first = store.append(StreamAppend("cart-1", expected, batch))
    fill(store, "cart-1", 1, start=3)  # the stream moves on: ``expected`` is stale now
    fill(store, "cart-2", 1)
    before = snapshot(store)

    again = store.append(StreamAppend("cart-1", expected, batch))

    assert again == first
    assert [e.global_position for e in again] == [e.global_position for e in first]
    assert snapshot(store) == before
    assert store.stream_version("cart-1") == 3


def test_reappending_a_multi_stream_append_returns_the_stored_result(store: EventStore) -> None:
    parts = (
        StreamAppend("cart-1", NO_STREAM, [NewEvent(added(1))]),
        StreamAppend("cart-2", NO_STREAM, [NewEvent(added(2)), NewEvent(ItemRemoved(item_id="item-2"))]),
    )
    first = store.append(*parts)
    before = snapshot(store)

    again = store.append(*parts)

    assert again == first
    assert snapshot(store) == before


@pytest.mark.parametrize("expected", [1, ANY], ids=["exact", "any"])
def test_partly_stored_event_ids_raise_idempotency_conflict_and_store_nothing(
    store: EventStore, expected: Any
) -> None:
    old = NewEvent(added(1))
    store.append(StreamAppend("cart-1", NO_STREAM, [old]))
    before = snapshot(store)
    new = NewEvent(added(2))

    with pytest.raises(IdempotencyConflict):
        store.append(StreamAppend("cart-1", expected, [old, new]))

    assert snapshot(store) == before
    assert store.read_by_ids([new.event_id]) == []


def test_an_event_id_stored_in_another_stream_raises_idempotency_conflict(store: EventStore) -> None:
    event = NewEvent(added(1))
    store.append(StreamAppend("cart-1", NO_STREAM, [event]))
    before = snapshot(store)

    with pytest.raises(IdempotencyConflict):
        store.append(StreamAppend("cart-2", NO_STREAM, [event]))

    assert snapshot(store) == before


# ------------------------------------------------------------------------------- types and schemas


def test_unknown_raw_event_type_raises_and_stores_nothing(store: EventStore) -> None:
    fill(store, "cart-1", 1)
    before = snapshot(store)

    with pytest.raises(UnknownEventType) as caught:
        store.append(StreamAppend("cart-1", ANY, [added(2), RawEvent("ItemTeleported", {"item_id": "A1"})]))

    assert caught.value.type_name == "ItemTeleported"
    assert "ItemTeleported" in str(caught.value)
    assert snapshot(store) == before


def test_unregistered_event_class_raises_unknown_event_type_and_stores_nothing(store: EventStore) -> None:
    with pytest.raises(UnknownEventType) as caught:
        store.append(StreamAppend("cart-1", NO_STREAM, [NeverRegistered(value=1)]))

    assert caught.value.type_name == "NeverRegistered"
    assert store.head_position() == 0


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"item_id": "A1", "quantity": "three"}, "quantity"),
        ({"item_id": "A1", "quantity": True}, "quantity"),
        ({"item_id": 7, "quantity": 1}, "item_id"),
        ({"item_id": "A1", "quantity": 1, "tags": ["ok", 3]}, "tags"),
        ({"item_id": "A1", "quantity": 1, "price": "free"}, "price"),
        ({"item_id": "A1"}, "quantity"),
        ({"item_id": "A1", "quantity": 1, "colour": "red"}, "colour"),
    ],
    ids=["wrong-type", "bool-for-int", "int-for-str", "bad-list-item", "str-for-float", "missing", "unknown"],
)
def test_raw_payload_that_fails_its_schema_raises_naming_the_field_and_stores_nothing(
    store: EventStore, payload: dict[str, Any], field: str
) -> None:
    fill(store, "cart-1", 1)
    before = snapshot(store)

    with pytest.raises(EventSchemaError) as caught:
        store.append(StreamAppend("cart-1", 1, [RawEvent("ItemAdded", payload)]))

    assert caught.value.type_name == "ItemAdded"
    assert field in caught.value.problems
    assert field in str(caught.value)
    assert snapshot(store) == before


def test_event_object_built_with_a_wrong_type_raises_naming_the_field_and_stores_nothing(
    store: EventStore,
) -> None:
    wrong = ItemAdded(item_id="A1", quantity="3")  # type: ignore[arg-type]  # dataclasses do not check

    with pytest.raises(EventSchemaError) as caught:
        store.append(StreamAppend("cart-1", NO_STREAM, [added(1), wrong]))

    assert set(caught.value.problems) == {"quantity"}
    assert "quantity" in str(caught.value)
    assert store.head_position() == 0
    assert store.stream_version("cart-1") == 0


# ------------------------------------------------------------------------------------------------ reads


def test_read_stream_honours_from_and_to_version(store: EventStore) -> None:
    fill(store, "cart-1", 5)
    fill(store, "cart-2", 2)

    def versions(**kw: Any) -> list[int]:
        return [e.stream_version for e in store.read_stream("cart-1", **kw)]

    assert versions() == [1, 2, 3, 4, 5]
    assert versions(from_version=2) == [2, 3, 4, 5]
    assert versions(to_version=3) == [1, 2, 3]
    assert versions(from_version=2, to_version=4) == [2, 3, 4]
    assert versions(from_version=3, to_version=3) == [3]
    assert versions(from_version=6) == []
    assert versions(from_version=4, to_version=2) == []
    assert {e.stream_id for e in store.read_stream("cart-1")} == {"cart-1"}
    assert store.read_stream("cart-404") == []


def test_read_all_honours_after_position_limit_types_streams_and_until_position(store: EventStore) -> None:
    store.append(StreamAppend("cart-1", ANY, [added(1), ItemRemoved(item_id="item-1")]))
    store.append(StreamAppend("cart-2", ANY, [added(2)]))
    store.append(StreamAppend("cart-1", ANY, [CartCheckedOut(total=1.0)]))
    store.append(StreamAppend("cart-3", ANY, [added(3), ItemRemoved(item_id="item-3")]))
    every = store.read_all()
    p = [e.global_position for e in every]

    assert len(every) == 6
    assert p == sorted(p) and len(set(p)) == 6
    assert store.read_all(after_position=p[1]) == every[2:]
    assert store.read_all(after_position=p[-1]) == []
    assert store.read_all(limit=2) == every[:2]
    assert store.read_all(after_position=p[0], limit=3) == every[1:4]
    assert store.read_all(until_position=p[2]) == every[:3]
    assert store.read_all(after_position=p[1], until_position=p[3]) == every[2:4]
    assert store.read_all(types=["ItemRemoved"]) == [e for e in every if e.type == "ItemRemoved"]
    assert store.read_all(types=["ItemAdded", "CartCheckedOut"]) == [
        e for e in every if e.type != "ItemRemoved"
    ]
    assert store.read_all(streams=["cart-1"]) == [e for e in every if e.stream_id == "cart-1"]
    assert store.read_all(streams=["cart-2", "cart-3"], types=["ItemAdded"], limit=1) == [every[2]]
    assert store.read_all(types=["ItemAdded"], after_position=p[2], until_position=p[4]) == [every[4]]
    assert store.read_all(types=[]) == []
    assert store.read_all(streams=["cart-404"]) == []


def test_stream_version_and_head_position_follow_appends(store: EventStore) -> None:
    assert store.head_position() == 0
    assert store.stream_version("cart-1") == 0

    fill(store, "cart-1", 3)
    last = store.append(StreamAppend("cart-2", NO_STREAM, [added(1)]))[-1]

    assert store.stream_version("cart-1") == 3
    assert store.stream_version("cart-2") == 1
    assert store.stream_version("cart-3") == 0
    assert store.head_position() == last.global_position == max(e.global_position for e in store.read_all())


def test_iter_all_yields_every_event_in_order_across_batches(store: EventStore) -> None:
    for n in range(7):
        store.append(StreamAppend(f"cart-{n % 3}", ANY, [added(n), ItemRemoved(item_id=f"item-{n}")]))
    every = store.read_all()
    assert len(every) == 14

    assert list(store.iter_all(batch=3)) == every
    assert list(store.iter_all(batch=7)) == every  # batch boundary on the last event
    assert list(store.iter_all(after_position=every[4].global_position, batch=4)) == every[5:]
    assert list(store.iter_all(batch=2, until_position=every[8].global_position)) == every[:9]
    removed = [e for e in every if e.type == "ItemRemoved"]
    assert list(store.iter_all(batch=2, types=["ItemRemoved"])) == removed
    assert list(store.iter_all(batch=2, streams=["cart-1"])) == [e for e in every if e.stream_id == "cart-1"]
    assert list(store.iter_all(after_position=every[-1].global_position)) == []


def test_read_by_ids_returns_stored_events_in_global_order(store: EventStore) -> None:
    fill(store, "cart-1", 2)
    fill(store, "cart-2", 2)
    every = store.read_all()

    wanted = [every[3].event_id, every[0].event_id, uuid.uuid4()]
    assert store.read_by_ids(wanted) == [every[0], every[3]]
    assert store.read_by_ids([uuid.uuid4()]) == []


def test_iter_category_groups_by_stream_and_stops_at_the_position(store: EventStore) -> None:
    store.append(StreamAppend("cart-2", ANY, [added(1)]))
    store.append(StreamAppend("cart-1", ANY, [added(2), added(3)]))
    store.append(StreamAppend("carts-1", ANY, [added(4)]))  # another category sharing the prefix
    store.append(StreamAppend("cart-2", ANY, [added(5)]))
    last = store.append(StreamAppend("cart-1", ANY, [added(6)]))[-1]

    got = [(e.stream_id, e.stream_version) for e in store.iter_category("cart", last.global_position - 1)]

    assert got == [("cart-1", 1), ("cart-1", 2), ("cart-2", 1), ("cart-2", 2)]


# ------------------------------------------------------------------------------------------ concurrency


def test_concurrent_any_appends_to_one_stream_get_versions_1_to_n_without_gaps(store: EventStore) -> None:
    # Enough contention on one hot stream that an append waiting behind others is the normal case.
    threads, appends_each = 24, 30
    errors: list[BaseException] = []
    ids: list[uuid.UUID] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        for n in range(appends_each):
            batch = [NewEvent(added(n)) for _ in range(1 + (n + i) % 3)]  # 1, 2 or 3 events
            try:
                store.append(StreamAppend("cart-hot", ANY, batch))
            except BaseException as exc:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(exc)
                continue
            with lock:
                ids.extend(e.event_id for e in batch)

    run_threads(threads, writer)

    stream = store.read_stream("cart-hot")
    assert errors == [], f"{len(errors)} of {threads * appends_each} ANY appends failed, e.g. {errors[:3]!r}"
    assert [e.stream_version for e in stream] == list(range(1, len(ids) + 1))
    assert sorted(e.event_id for e in stream) == sorted(ids)
    assert len({e.global_position for e in stream}) == len(stream)
    assert store.stream_version("cart-hot") == len(ids)


def test_racing_appends_with_the_same_expected_version_have_exactly_one_winner(store: EventStore) -> None:
    threads, rounds = 6, 4
    for round_ in range(rounds):
        version = store.stream_version("cart-race")
        outcomes: list[object] = []
        lock = threading.Lock()

        def racer(i: int) -> None:
            try:
                result: object = store.append(StreamAppend("cart-race", version, [added(i), added(i)]))
            except ConcurrencyError as exc:
                result = exc
            except BaseException as exc:  # noqa: BLE001 - any other error fails the test below
                result = ("unexpected", exc)
            with lock:
                outcomes.append(result)

        run_threads(threads, racer)

        wins = [o for o in outcomes if isinstance(o, list)]
        losses = [o for o in outcomes if isinstance(o, ConcurrencyError)]
        assert len(outcomes) == threads
        assert len(wins) == 1, f"round {round_}: {outcomes}"
        assert len(losses) == threads - 1, f"round {round_}: {outcomes}"
        assert all((e.stream_id, e.expected, e.actual) == ("cart-race", version, version + 2) for e in losses)
        assert [e.stream_version for e in wins[0]] == [version + 1, version + 2]
        assert store.read_stream("cart-race", from_version=version + 1) == wins[0]
    assert store.stream_version("cart-race") == 2 * rounds
    assert len(everything(store)) == 2 * rounds


# ------------------------------------------------------------------------------- PostgreSQL specifics


@pytest.mark.postgres
def test_recorded_at_is_utc_even_when_the_postgres_session_time_zone_is_not(
    pg_url: str, registry, make_store
) -> None:
    with pg.connect(pg_url) as conn:
        database = sql.Identifier(conn.info.dbname)
        conn.execute(sql.SQL("ALTER DATABASE {} SET timezone TO 'America/New_York'").format(database))
    store = make_store(pg_url, registry)

    (appended,) = store.append(StreamAppend("cart-1", NO_STREAM, [added(1)]))
    (read,) = store.read_stream("cart-1")

    assert appended.recorded_at.utcoffset() == timedelta(0), appended.recorded_at
    assert read.recorded_at.utcoffset() == timedelta(0), read.recorded_at
    assert read == appended


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


@pytest.mark.postgres
def test_any_append_that_keeps_losing_the_race_for_its_stream_still_succeeds(
    pg_url: str, registry, make_store
) -> None:
    """ANY never raises ConcurrencyError, however often other commits to its stream get in first.

    Deterministic version of the hot-stream race: a second session holds the store's append lock while the
    append waits for it, commits one more event to the same stream, then lets the append through; repeated
    more times than the store retries internally.
    """
    store = make_store(pg_url, registry)
    store.append(StreamAppend("cart-hot", NO_STREAM, [added(0)]))
    rivals = ANY_RETRIES + 5
    outcome: list[object] = []
    appender = threading.Thread(
        target=lambda: outcome.append(_append_or_error(store, StreamAppend("cart-hot", ANY, [added(99)]))),
        daemon=True,
    )

    with pg.connect(pg_url) as rival:
        rival.execute("SELECT pg_advisory_lock(%s)", (APPEND_LOCK_KEY,))
        appender.start()
        cut_in = 0
        for version in range(2, rivals + 2):

            def appender_waits_for_the_lock() -> bool:
                return not appender.is_alive() or rival.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                ).fetchone()[0] > 0

            wait_until(appender_waits_for_the_lock, THREAD_TIMEOUT, "the append waits for the lock")
            if not appender.is_alive():
                break
            # Another writer's event for the same stream commits while the append waits for the lock.
            rival.execute(
                "INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data,"
                " metadata, recorded_at) VALUES (%s, 'cart-hot', %s, 'ItemAdded', 1, %s, %s, now())",
                (uuid.uuid4(), version, '{"item_id": "rival", "quantity": 1}', '{"actor": "rival"}'),
            )
            cut_in += 1
            rival.execute("SELECT pg_advisory_unlock(%s)", (APPEND_LOCK_KEY,))
            # Granted once the append's attempt ends, before it can try again.
            rival.execute("SELECT pg_advisory_lock(%s)", (APPEND_LOCK_KEY,))
        rival.execute("SELECT pg_advisory_unlock(%s)", (APPEND_LOCK_KEY,))
    appender.join(THREAD_TIMEOUT)

    assert not appender.is_alive()
    assert cut_in >= 1, "the rival never got in first: the test did not exercise the race"
    (result,) = outcome
    assert not isinstance(result, BaseException), f"failed after {cut_in} rival commits: {result!r}"
    assert [e.stream_version for e in result] == [cut_in + 2]
    assert store.stream_version("cart-hot") == cut_in + 2


def _append_or_error(store: EventStore, *parts: StreamAppend) -> object:
    try:
        return store.append(*parts)
    except BaseException as exc:  # noqa: BLE001 - inspected by the caller
        return exc


def test_a_nul_character_in_a_payload_is_refused_on_both_stores_and_nothing_is_stored(store) -> None:
    """PostgreSQL text and jsonb cannot hold NUL; SQLite could, so both refuse it alike."""
    from events.errors import EventSchemaError
    from events.types import ExpectedVersion, RawEvent, StreamAppend
    from tests.support.sample_events import ItemAdded

    head = store.head_position()
    with pytest.raises(EventSchemaError, match="NUL"):
        store.append(StreamAppend("cart-nul", ExpectedVersion.ANY, [
            RawEvent(ItemAdded.type_name, {"item_id": "a\x00b", "quantity": 1}),
        ]))
    store.append(StreamAppend("cart-nul", ExpectedVersion.ANY, [  # the text "\u0000" itself is fine
        RawEvent(ItemAdded.type_name, {"item_id": "a\\u0000b", "quantity": 1}),
    ]))
    assert store.head_position() > head
    assert [e.data["item_id"] for e in store.read_stream("cart-nul")] == ["a\\u0000b"]
