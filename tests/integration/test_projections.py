"""Projections on both stores: inline entity read models, rebuilds (also while appends go on), the async
event-type statistics with their checkpoint (also across real SIGKILLs of the runner process), and the
catch-up subscription they run on."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from events.store import EventStore
from events.streams import CATEGORIES
from events.streams.action import ActionCreated
from events.streams.dataset import DatasetCreated, DatasetUpdated
from events.streams.engine import EngineCreated
from events.streams.event import EventCreated
from events.streams.workflow import WorkflowCreated, WorkflowDeleted, WorkflowUpdated
from events.subscription import CatchUpSubscription, wait_until
from events.types import ExpectedVersion, NewEvent, RecordedEvent, StreamAppend
from projections.catalog import all_projections
from projections.rebuild import rebuild_all
from projections.runner import AsyncProjectionRunner, subscription_for
from projections.stats import EventTypeCounts
from tests.integration.projection_fixtures import (
    ENTITY_TABLES,
    STATS_NAME,
    STATS_TABLE,
    Traffic,
    Writer,
    assert_same_rows,
    checkpoint,
    oracle_entity_rows,
    snapshot,
    stats_counts,
    table_rows,
    true_type_counts,
)
from tests.support.stores import url_of
from tests.support.world import open_projected_store

ROOT = Path(__file__).resolve().parents[2]
NO_STREAM = ExpectedVersion.NO_STREAM


def _stream(store: EventStore, stream_id: str) -> list[RecordedEvent]:
    return store.read_stream(stream_id)


def _log(store: EventStore) -> list[RecordedEvent]:
    return list(store.iter_all())


# ----------------------------------------------------------------------------------- inline read models
def test_inline_workflow_row_is_the_fold_of_its_stream_after_each_append(projected_store: EventStore) -> None:
    sid, wid = "workflow-WF00000001", "WF00000001"
    data = {"name": "wf_one", "state": "INACTIVE", "engine": {"args": [1, {"a": None}], "x": 1.5}, "tags": []}
    projected_store.append(StreamAppend(sid, NO_STREAM, [WorkflowCreated(data)]))
    [created] = _stream(projected_store, sid)
    assert table_rows(projected_store, "rm_workflow")[wid] == {
        "id": wid, "version": 1, "created": created.recorded_at, "updated": created.recorded_at,
        "state": "INACTIVE", "name": "wf_one", "data": data,
    }

    # Two updates in one append: merged in order, shallowly (a nested dict is replaced, not merged).
    projected_store.append(
        StreamAppend(sid, 1, [
            WorkflowUpdated({"state": "ACTIVE", "tags": ["a", "b"]}),
            WorkflowUpdated({"name": "wf_renamed", "engine": {"args": []}, "on_failure": "DEACTIVATE"}),
        ])
    )
    history = _stream(projected_store, sid)
    assert [e.stream_version for e in history] == [1, 2, 3]
    assert table_rows(projected_store, "rm_workflow")[wid] == {
        "id": wid, "version": 3, "created": history[0].recorded_at, "updated": history[2].recorded_at,
        "state": "ACTIVE", "name": "wf_renamed",
        "data": {"name": "wf_renamed", "state": "ACTIVE", "engine": {"args": []}, "tags": ["a", "b"],
                 "on_failure": "DEACTIVATE"},
    }

    # A second workflow in a multi-stream append, whose state is not a string: the column is NULL.
    other_sid = "workflow-WF00000002"
    projected_store.append(
        StreamAppend(other_sid, NO_STREAM, [WorkflowCreated({"name": "wf_two", "state": {"odd": True}})]),
        StreamAppend(sid, 3, [WorkflowUpdated({"state": "INACTIVE"})]),
    )
    rows = table_rows(projected_store, "rm_workflow")
    assert rows["WF00000002"]["state"] is None and rows["WF00000002"]["name"] == "wf_two"
    assert rows["WF00000002"]["data"] == {"name": "wf_two", "state": {"odd": True}}
    assert rows[wid]["version"] == 4 and rows[wid]["state"] == "INACTIVE"
    assert rows[wid]["updated"] == _stream(projected_store, sid)[-1].recorded_at
    assert rows[wid]["created"] == history[0].recorded_at

    # Deleted: the row goes, the history stays, the other workflow is untouched.
    before_other = rows["WF00000002"]
    projected_store.append(StreamAppend(sid, 4, [WorkflowDeleted()]))
    rows = table_rows(projected_store, "rm_workflow")
    assert wid not in rows
    assert rows["WF00000002"] == before_other
    assert len(_stream(projected_store, sid)) == 5

    # An update of a deleted workflow brings no row back; created again, it starts afresh.
    projected_store.append(StreamAppend(sid, 5, [WorkflowUpdated({"name": "ghost"})]))
    assert wid not in table_rows(projected_store, "rm_workflow")
    projected_store.append(StreamAppend(sid, 6, [WorkflowCreated({"name": "wf_again"})]))
    again = _stream(projected_store, sid)[-1]
    assert table_rows(projected_store, "rm_workflow")[wid] == {
        "id": wid, "version": 7, "created": again.recorded_at, "updated": again.recorded_at,
        "state": None, "name": "wf_again", "data": {"name": "wf_again"},
    }


def test_inline_entity_lifecycle_within_one_append_leaves_the_final_state(
        projected_store: EventStore) -> None:
    projected_store.append(
        StreamAppend("workflow-BORNANDGONE", NO_STREAM, [
            WorkflowCreated({"name": "short_lived"}), WorkflowUpdated({"state": "ACTIVE"}), WorkflowDeleted(),
        ]),
        StreamAppend("workflow-BORNANDKEPT", NO_STREAM, [
            WorkflowCreated({"name": "kept", "n": [1]}), WorkflowUpdated({"n": [1, 2]}),
        ]),
    )
    rows = table_rows(projected_store, "rm_workflow")
    assert set(rows) == {"BORNANDKEPT"}
    kept = _stream(projected_store, "workflow-BORNANDKEPT")
    assert rows["BORNANDKEPT"]["version"] == 2
    assert rows["BORNANDKEPT"]["data"] == {"name": "kept", "n": [1, 2]}
    assert rows["BORNANDKEPT"]["created"] == kept[0].recorded_at
    assert rows["BORNANDKEPT"]["updated"] == kept[1].recorded_at


def test_reappending_stored_event_ids_does_not_apply_inline_projections_again(
        projected_store: EventStore) -> None:
    created = NewEvent(WorkflowCreated({"name": "once", "n": 1}))
    updated = NewEvent(WorkflowUpdated({"n": 2}))
    projected_store.append(StreamAppend("workflow-IDEMPOTENT", NO_STREAM, [created, updated]))
    row = table_rows(projected_store, "rm_workflow")["IDEMPOTENT"]
    again = projected_store.append(StreamAppend("workflow-IDEMPOTENT", NO_STREAM, [created, updated]))
    assert [e.stream_version for e in again] == [1, 2]
    assert table_rows(projected_store, "rm_workflow")["IDEMPOTENT"] == row
    assert projected_store.stream_version("workflow-IDEMPOTENT") == 2


class _Probe:
    """An inline projection registered after the entity ones: looks at rm_workflow from inside the append's
    transaction and from another connection."""

    name = "test.probe"

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.inside: list[dict | None] = []
        self.outside: list[bool] = []

    def handles(self, type_name: str) -> bool:
        return type_name == "WorkflowCreated"

    def apply(self, conn: sa.Connection, events: Sequence[RecordedEvent]) -> None:
        ids = [e.entity_id for e in events]
        seen = conn.execute(sa.text("SELECT id, version FROM rm_workflow")).mappings().all()
        self.inside.append({r["id"]: r["version"] for r in seen if r["id"] in ids})
        with self.store.engine.connect() as other:
            query = sa.text("SELECT count(*) FROM rm_workflow WHERE id = :i")
            found = other.execute(query, {"i": ids[0]}).scalar()
            other.rollback()
        self.outside.append(bool(found))


def test_inline_read_model_is_written_in_the_appends_own_transaction(projected_store: EventStore) -> None:
    probe = _Probe(projected_store)
    projected_store.add_inline_projection(probe)
    projected_store.append(StreamAppend("workflow-PROBED0001", NO_STREAM, [WorkflowCreated({"name": "p"})]))
    assert probe.inside == [{"PROBED0001": 1}], "the row is not there yet inside the append's transaction"
    assert probe.outside == [False], "the row was visible to others before the append committed"
    assert "PROBED0001" in table_rows(projected_store, "rm_workflow")


class _Exploding:
    name = "test.exploding"

    def __init__(self, types: set[str]) -> None:
        self.types = types
        self.calls = 0

    def handles(self, type_name: str) -> bool:
        return type_name in self.types

    def apply(self, conn: sa.Connection, events: Sequence[RecordedEvent]) -> None:
        self.calls += 1
        raise RuntimeError("inline projection failed")


def test_failing_inline_projection_fails_the_append_and_changes_neither_log_nor_read_models(
    projected_store: EventStore,
) -> None:
    projected_store.append(
        StreamAppend("workflow-WFBOOM0001", NO_STREAM, [WorkflowCreated({"name": "w", "state": "ACTIVE"})]),
        StreamAppend("dataset-DSBOOM0001", NO_STREAM, [DatasetCreated({"name": "d"})]),
    )
    tables_before = snapshot(projected_store)
    log_before = _log(projected_store)
    exploding = _Exploding({"WorkflowUpdated"})
    # after the entity projections: they have written when it fails
    projected_store.add_inline_projection(exploding)

    for expected in (1, ExpectedVersion.ANY):
        with pytest.raises(RuntimeError, match="inline projection failed"):
            projected_store.append(
                StreamAppend("dataset-DSBOOM0001", expected, [DatasetUpdated({"name": "d2"})]),
                StreamAppend("action-ACBOOM0001", NO_STREAM, [ActionCreated({"name": "a"})]),
                StreamAppend("workflow-WFBOOM0001", expected, [WorkflowUpdated({"state": "INACTIVE"})]),
            )
    assert exploding.calls == 2
    assert _log(projected_store) == log_before
    assert projected_store.head_position() == log_before[-1].global_position
    streams = ("dataset-DSBOOM0001", "action-ACBOOM0001", "workflow-WFBOOM0001")
    assert [projected_store.stream_version(s) for s in streams] == [1, 0, 1]
    assert snapshot(projected_store) == tables_before

    # The store is still usable, and appends the failing projection does not handle go through.
    projected_store.append(StreamAppend("dataset-DSBOOM0001", 1, [DatasetUpdated({"name": "d3"})]))
    assert table_rows(projected_store, "rm_dataset")["DSBOOM0001"]["name"] == "d3"
    assert table_rows(projected_store, "rm_workflow")["WFBOOM0001"]["state"] == "ACTIVE"


# ------------------------------------------------------------------------------------------- rebuilds
def test_rebuilt_entity_tables_equal_the_live_inline_tables(projected_store: EventStore) -> None:
    traffic = Traffic(projected_store, seed=1)
    traffic.run(2000)
    live = snapshot(projected_store)
    assert all(live[t] for t in ENTITY_TABLES), "every category should have live entities"
    assert_same_rows(live, oracle_entity_rows(projected_store), "live tables vs a fold of the log")

    summary = rebuild_all(projected_store, ["entities"])
    assert sorted(r.name for r in summary.results) == sorted(f"entities.{c}" for c in CATEGORIES)
    assert summary.events == projected_store.count()
    rebuilt_counts = {t: n for r in summary.results for t, n in r.rows.items()}
    assert rebuilt_counts == {t: len(live[t]) for t in ENTITY_TABLES}
    assert_same_rows(snapshot(projected_store), live, "rebuilt tables vs live tables")

    # The swapped-in tables are the live ones now: later appends keep them right.
    traffic.run(2200)
    assert_same_rows(snapshot(projected_store), oracle_entity_rows(projected_store),
                     "tables after more appends vs the log")


def test_rebuilt_stats_equal_their_caught_up_state(projected_store: EventStore) -> None:
    Traffic(projected_store, seed=2).run(800)
    runner = AsyncProjectionRunner(projected_store, [p for p in all_projections() if p.name == STATS_NAME])
    assert [s.name for s in runner.subscriptions] == [STATS_NAME]
    assert runner.catch_up() == projected_store.count()
    caught_up = table_rows(projected_store, STATS_TABLE)
    assert stats_counts(projected_store) == true_type_counts(projected_store)
    log = _log(projected_store)
    last = {e.type: e for e in log}
    assert {t: (r["last_position"], r["last_recorded_at"]) for t, r in caught_up.items()} == {
        t: (e.global_position, e.recorded_at) for t, e in last.items()
    }
    assert checkpoint(projected_store) == projected_store.head_position()

    [result] = rebuild_all(projected_store, [STATS_NAME]).results
    assert result.name == STATS_NAME and result.events == len(log)
    assert table_rows(projected_store, STATS_TABLE) == caught_up
    assert checkpoint(projected_store) == projected_store.head_position()
    assert runner.catch_up() == 0, "the runner re-applied events the rebuild already counted"
    assert table_rows(projected_store, STATS_TABLE) == caught_up


def test_rebuild_while_writers_append_gives_the_rows_of_the_log(projected_store: EventStore) -> None:
    Traffic(projected_store, seed=3).run(1000)
    runner = AsyncProjectionRunner(projected_store, [p for p in all_projections() if p.name == STATS_NAME])
    runner.subscriptions[0].poll_interval = 0.05
    writers = [Writer(projected_store, seed, pace=0.001) for seed in (31, 32)]
    runner.start()
    for w in writers:
        w.start()
    try:
        assert wait_until(lambda: all(w.appends >= 5 for w in writers), timeout=30)
        head_before = projected_store.head_position()
        appends_during, rebuilds = 0, 0
        while rebuilds < 2 or (appends_during < 100 and rebuilds < 6):
            appends_before = sum(w.appends for w in writers)
            # The entity read models, then every projection (the running stats too).
            rebuild_all(projected_store, ["entities"] if rebuilds % 2 == 0 else None)
            appends_during += sum(w.appends for w in writers) - appends_before
            rebuilds += 1
        head_after = projected_store.head_position()
    finally:
        for w in writers:
            w.stop()
    try:
        errors = [repr(e) for w in writers for e in w.errors]
        assert errors == [], f"appends failed during the rebuild: {errors[:3]}"
        assert appends_during > 0 and head_after > head_before, "no append ran during the rebuild"
        assert wait_until(lambda: checkpoint(projected_store) == projected_store.head_position(), timeout=30)
    finally:
        runner.stop()
    assert stats_counts(projected_store) == true_type_counts(projected_store)

    live = snapshot(projected_store)
    assert_same_rows(live, oracle_entity_rows(projected_store),
                     "live tables after concurrent rebuilds vs the log")
    rebuild_all(projected_store, ["entities"])
    assert_same_rows(snapshot(projected_store), live, "a quiet rebuild vs the live tables")


# ------------------------------------------------------------------------------------- async projection
def test_async_projection_checkpoint_advances_with_its_writes(projected_store: EventStore) -> None:
    Traffic(projected_store, seed=4).run(500)
    log = _log(projected_store)
    sub = subscription_for(projected_store, EventTypeCounts(), batch_size=100)
    assert sub.name == STATS_NAME and checkpoint(projected_store) == 0 and stats_counts(projected_store) == {}

    assert sub.run_once() == 100
    assert checkpoint(projected_store) == log[99].global_position
    assert stats_counts(projected_store) == dict(Counter(e.type for e in log[:100]))

    while sub.run_once():
        pass
    assert checkpoint(projected_store) == projected_store.head_position() == log[-1].global_position
    assert stats_counts(projected_store) == true_type_counts(projected_store)

    Traffic(projected_store, seed=40).run(150)
    assert projected_store.head_position() > log[-1].global_position
    while sub.run_once():
        pass
    assert checkpoint(projected_store) == projected_store.head_position()
    assert stats_counts(projected_store) == true_type_counts(projected_store)


class _FailsMidBatch(EventTypeCounts):
    """Counts half the batch, checks the writes are there, then fails (while ``failures`` last)."""

    def __init__(self, failures: int = 1, suffix: str = "") -> None:
        super().__init__(suffix)
        self.failures = failures
        self.failed = 0
        self.seen_written: list[int] = []

    def apply(self, conn: sa.Connection, events: Sequence[RecordedEvent]) -> None:
        half = max(1, len(events) // 2)
        super().apply(conn, events[:half])
        if self.failed < self.failures:
            t = self.tables["stats_event_type_counts"]
            self.seen_written.append(int(conn.execute(sa.select(sa.func.sum(t.c.count))).scalar() or 0))
            self.failed += 1
            raise RuntimeError("apply failed mid-batch")
        super().apply(conn, events[half:])


def test_exception_in_async_apply_rolls_back_writes_and_checkpoint_then_applies_each_event_once(
    projected_store: EventStore,
) -> None:
    Traffic(projected_store, seed=5).run(600)
    good = subscription_for(projected_store, EventTypeCounts(), batch_size=100)
    good.run_once()
    good.run_once()
    rows_before, position_before = table_rows(projected_store, STATS_TABLE), checkpoint(projected_store)
    assert sum(r["count"] for r in rows_before.values()) == 200

    failing = _FailsMidBatch(failures=1)
    with pytest.raises(RuntimeError, match="mid-batch"):
        subscription_for(projected_store, failing, batch_size=100).run_once()
    assert failing.seen_written == [250], "the half batch was not written before the failure"
    assert table_rows(projected_store, STATS_TABLE) == rows_before
    assert checkpoint(projected_store) == position_before

    while good.run_once():
        pass
    assert stats_counts(projected_store) == true_type_counts(projected_store)
    assert checkpoint(projected_store) == projected_store.head_position()


def test_running_async_projection_retries_failed_batches_and_counts_every_event_once(
    projected_store: EventStore,
) -> None:
    Traffic(projected_store, seed=6).run(400)
    failing = _FailsMidBatch(failures=3)
    sub = subscription_for(projected_store, failing, batch_size=64)
    sub.retry_interval = 0.01
    sub.poll_interval = 0.05
    thread, stop = sub.start()
    try:
        assert wait_until(lambda: checkpoint(projected_store) == projected_store.head_position(), timeout=30)
        Traffic(projected_store, seed=60).run(200)  # followed live, through the in-process append signal
        assert wait_until(lambda: checkpoint(projected_store) == projected_store.head_position(), timeout=30)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert failing.failed == 3
    assert stats_counts(projected_store) == true_type_counts(projected_store)


def test_async_projection_runner_thread_follows_appends(projected_store: EventStore) -> None:
    Traffic(projected_store, seed=7).run(200)
    runner = AsyncProjectionRunner(projected_store, all_projections())
    runner.subscriptions[0].poll_interval = 0.05
    runner.start()
    try:
        Traffic(projected_store, seed=70).run(300)
        assert wait_until(lambda: stats_counts(projected_store) == true_type_counts(projected_store),
                          timeout=30)
        assert wait_until(lambda: checkpoint(projected_store) == projected_store.head_position(), timeout=30)
    finally:
        runner.stop()
    assert all(not t.is_alive() for t, _ in runner._threads)


def test_two_runners_of_one_async_projection_never_count_an_event_twice(projected_store: EventStore) -> None:
    Traffic(projected_store, seed=13).run(300)
    subs = [subscription_for(projected_store, EventTypeCounts(), batch_size=size) for size in (16, 37)]
    for sub in subs:
        sub.retry_interval = 0.01
        sub.poll_interval = 0.02
    writer = Writer(projected_store, seed=130)
    runs = [sub.start() for sub in subs]
    writer.start()
    try:
        assert wait_until(lambda: writer.appends >= 100, timeout=30)
    finally:
        writer.stop()
    try:
        assert wait_until(lambda: checkpoint(projected_store) == projected_store.head_position(), timeout=30)
    finally:
        for thread, stop in runs:
            stop.set()
        for thread, _ in runs:
            thread.join(10)
    assert writer.errors == []
    assert stats_counts(projected_store) == true_type_counts(projected_store)


# ------------------------------------------------------------------------------- crash safety, real kill
_RUNNER_CHILD = textwrap.dedent(
    """
    import sys, time
    from events.database import open_store
    from events.streams import default_registry
    from projections.runner import subscription_for
    from projections.stats import EventTypeCounts

    class SlowCounts(EventTypeCounts):
        # Holds its transaction open after writing, so most kills land between the writes and the commit.
        def apply(self, conn, events):
            super().apply(conn, events)
            time.sleep(0.02)

    store = open_store(sys.argv[1], default_registry(), migrate=False)
    sub = subscription_for(store, SlowCounts(), batch_size=int(sys.argv[2]))
    while True:
        if sub.run_once() == 0:
            time.sleep(0.002)
    """
)


def test_async_projection_survives_sigkill_of_its_process_without_double_or_missed_counts(
    projected_store: EventStore,
) -> None:
    rng = random.Random(8)
    url = url_of(projected_store)
    Traffic(projected_store, seed=8).run(300)
    writer = Writer(projected_store, seed=80, pace=0.002)
    writer.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    try:
        for _ in range(5):
            child = subprocess.Popen(
                [sys.executable, "-c", _RUNNER_CHILD, url, str(rng.choice([3, 7, 20]))],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            try:
                start = checkpoint(projected_store)
                progressed = wait_until(
                    lambda: checkpoint(projected_store) > start or child.poll() is not None,  # noqa: B023 - awaited here
                    timeout=60,
                )
                assert progressed and child.poll() is None, (
                    f"the runner made no progress or died: rc={child.poll()} "
                    f"{child.stderr.read().decode() if child.poll() is not None else ''}"
                )
                # Kill at a random moment of its work (there is no condition to wait for: any moment will do).
                time.sleep(rng.uniform(0.02, 0.3))
                assert child.poll() is None, child.stderr.read().decode()
                child.send_signal(signal.SIGKILL)
                assert child.wait(10) == -signal.SIGKILL
                kills += 1
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait(10)
                child.stderr.close()
    finally:
        writer.stop()
    assert writer.errors == []
    assert kills == 5

    assert checkpoint(projected_store) > 0
    sub = subscription_for(projected_store, EventTypeCounts(), batch_size=50)
    while sub.run_once():
        pass
    assert checkpoint(projected_store) == projected_store.head_position()
    assert stats_counts(projected_store) == true_type_counts(projected_store)
    log = _log(projected_store)
    assert sum(stats_counts(projected_store).values()) == len(log)


# ------------------------------------------------------------------------------- catch-up subscription
def test_catch_up_subscription_delivers_every_event_in_global_order_while_writers_append(
    projected_store: EventStore,
) -> None:
    Traffic(projected_store, seed=9).run(300)
    delivered: list[RecordedEvent] = []
    sub = CatchUpSubscription(projected_store, "test.follower", delivered.extend, batch_size=50,
                              poll_interval=0.05)
    thread, stop = sub.start()
    writers = [Writer(projected_store, seed) for seed in (91, 92, 93)]
    for w in writers:
        w.start()
    try:
        assert wait_until(lambda: all(w.appends >= 30 for w in writers), timeout=60)
    finally:
        for w in writers:
            w.stop()
    try:
        head = projected_store.head_position()
        assert wait_until(lambda: sub.position() >= head, timeout=30)
    finally:
        stop.set()
        thread.join(10)
    assert [repr(e) for w in writers for e in w.errors] == []
    positions = [e.global_position for e in delivered]
    assert all(a < b for a, b in itertools.pairwise(positions)), "delivered out of global order or twice"
    assert delivered == _log(projected_store), "some event was skipped or differs from the stored one"


def test_catch_up_subscription_resumes_from_its_checkpoint_after_a_restart(
        projected_store: EventStore) -> None:
    Traffic(projected_store, seed=10).run(400)
    log = _log(projected_store)
    first: list[RecordedEvent] = []
    sub = CatchUpSubscription(projected_store, "test.resume", first.extend, batch_size=60)
    assert sub.run_once() == 60 and sub.run_once() == 60
    assert sub.position() == first[-1].global_position == log[119].global_position

    # A restart: a new store and subscription object on the same database and name.
    restarted = open_projected_store(url_of(projected_store), migrate=False)
    try:
        second: list[RecordedEvent] = []
        sub2 = CatchUpSubscription(restarted, "test.resume", second.extend, batch_size=60)
        assert sub2.position() == log[119].global_position
        while sub2.run_once():
            pass
        assert sub2.position() == restarted.head_position()
    finally:
        restarted.close()
    assert first + second == log


def test_catch_up_subscription_redelivers_a_batch_whose_handler_failed(projected_store: EventStore) -> None:
    Traffic(projected_store, seed=11).run(100)
    calls: list[list[int]] = []

    def flaky(events: Sequence[RecordedEvent]) -> None:
        calls.append([e.global_position for e in events])
        if len(calls) == 1:
            raise RuntimeError("handler failed")

    sub = CatchUpSubscription(projected_store, "test.flaky", flaky, batch_size=30)
    with pytest.raises(RuntimeError):
        sub.run_once()
    assert sub.position() == 0
    assert sub.run_once() == 30
    assert calls[0] == calls[1] and len(calls[0]) == 30
    assert sub.position() == calls[1][-1]


def test_catch_up_subscription_delivers_only_its_types_and_moves_past_others(
        projected_store: EventStore) -> None:
    Traffic(projected_store, seed=12).run(600)
    types = ["WorkflowCreated", "ActionDeleted", "DatasetUpdated"]
    got: list[RecordedEvent] = []
    sub = CatchUpSubscription(projected_store, "test.types", got.extend, types=types, batch_size=25)
    while sub.run_once():
        pass
    wanted = [e for e in _log(projected_store) if e.type in types]
    assert len(wanted) > 25
    assert got == wanted
    assert sub.position() == projected_store.head_position()

    # Only events of other types arrive: nothing is delivered, the checkpoint still moves to the head.
    projected_store.append(StreamAppend("engine-ENGINE0001", NO_STREAM, [EngineCreated({"name": "no_op"})]))
    assert sub.run_once() == 0
    assert got == wanted
    assert sub.position() == projected_store.head_position()


def test_catch_up_subscription_handler_can_append_its_reactions_to_the_store(
        projected_store: EventStore) -> None:
    """Consumers react to events with new commands (design.md §1, §4): a handler that appends must work."""
    if projected_store.engine.dialect.name == "sqlite":
        # Bound the wait for SQLite's write lock to 3 s instead of the store's 60 s, so a handler blocked
        # behind a lock its own subscription holds fails fast instead of hanging the test for a minute.
        projected_store.engine.dispose()
        sa.event.listen(
            projected_store.engine, "connect", lambda dbapi, _rec: dbapi.execute("PRAGMA busy_timeout=3000")
        )
    for n in range(3):
        projected_store.append(StreamAppend(f"workflow-REACT0000{n}", NO_STREAM,
                                            [WorkflowCreated({"name": f"w{n}"})]))

    def react(events: Sequence[RecordedEvent]) -> None:
        for e in events:
            reaction = EventCreated({"name": "reaction"})
            projected_store.append(StreamAppend(f"event-{e.entity_id}", NO_STREAM, [reaction]))

    sub = CatchUpSubscription(projected_store, "test.reactor", react, types=["WorkflowCreated"])
    assert sub.run_once() == 3
    assert [projected_store.stream_version(f"event-REACT0000{n}") for n in range(3)] == [1, 1, 1]
    assert sub.position() == projected_store.read_all(types=["WorkflowCreated"])[-1].global_position
    assert sub.run_once() == 0  # the reactions are of other types: nothing to handle, the checkpoint moves on
    assert sub.position() == projected_store.head_position()


def test_a_reader_waiting_for_its_types_is_not_woken_by_others_but_is_by_its_own(
        projected_store: EventStore) -> None:
    head = projected_store.head_position()
    projected_store.append(StreamAppend("engine-WAKE000001", NO_STREAM, [EngineCreated({"name": "other"})]))
    assert projected_store.wait_for_append(head, 0.0) is True
    assert projected_store.wait_for_append(head, 0.0, types=["WorkflowCreated"]) is False  # not its type
    projected_store.append(StreamAppend("workflow-WAKE000001", NO_STREAM,
                                        [WorkflowCreated({"name": "mine"})]))
    assert projected_store.wait_for_append(head, 0.0, types=["WorkflowCreated"]) is True

    # On PostgreSQL the waits above started the LISTEN connection; the moment it is in force it wakes every
    # waiting reader once (appends may have been missed while it connected): let that pass first.
    listener = getattr(projected_store, "_listener", None)
    assert listener is None or listener.listening.wait(30)
    woken: list[bool] = []
    position = projected_store.head_position()
    waiter = threading.Thread(
        target=lambda: woken.append(projected_store.wait_for_append(position, 60, ["DatasetCreated"])))
    waiter.start()
    projected_store.append(StreamAppend("engine-WAKE000002", NO_STREAM, [EngineCreated({"name": "other"})]))
    waiter.join(0.5)
    assert waiter.is_alive() and woken == []  # still asleep: another type
    projected_store.append(StreamAppend("dataset-WAKE000001", NO_STREAM, [DatasetCreated({"name": "d"})]))
    waiter.join(30)
    assert not waiter.is_alive() and woken == [True]


def test_a_lingering_reader_takes_a_burst_in_one_batch(projected_store: EventStore) -> None:
    batches: list[int] = []
    sub = CatchUpSubscription(projected_store, "test.linger", lambda events: batches.append(len(events)),
                              types=["WorkflowCreated"], linger=2.0)
    thread, stop = sub.start()
    try:
        projected_store.append(StreamAppend("workflow-LINGER0000", NO_STREAM,
                                            [WorkflowCreated({"name": "first"})]))
        assert wait_until(lambda: batches == [1], 30)
        for n in range(1, 6):  # while it lingers
            projected_store.append(StreamAppend(f"workflow-LINGER000{n}", NO_STREAM,
                                                [WorkflowCreated({"name": f"w{n}"})]))
        assert wait_until(lambda: sum(batches) == 6, 30)
        assert batches == [1, 5]
    finally:
        stop.set()
        thread.join(10)
