"""The run statistics behind /metrics (projections/run_stats.py), on both stores: known runs and actions give
known counts and histogram buckets, whatever the batch size, and a rebuild from the log gives the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from events.store import EventStore
from events.types import ExpectedVersion, NewEvent, RawEvent, StreamAppend
from projections.rebuild import rebuild_all
from projections.run_stats import DURATION_BUCKETS, RunStats, read_histograms, read_outcomes
from projections.runner import subscription_for

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def append(store: EventStore, stream: str, type_name: str, data: dict[str, Any]) -> None:
    store.append(StreamAppend(stream, ExpectedVersion.ANY, [NewEvent(RawEvent(type_name, data))]))


def run(store: EventStore, workflow_id: str, instance_id: str, actions: list[tuple[str, float, float, str]],
        end: str) -> None:
    """An instance queued at T0 whose actions (id, seconds queued after T0, seconds running, end state) ran
    one after the other, then ended with ``end`` (WorkflowInstanceCompleted, ...Failed, ...Cancelled)."""
    stream = f"workflow_instance-{instance_id}"
    append(store, stream, "WorkflowInstanceCreated", {"data": {"workflow_id": workflow_id, "state": "QUEUED",
                                                              "queued_time": at(0)}})
    for i, (action_id, queued, ran, state) in enumerate(actions):
        a = f"action-{action_id}"
        append(store, a, "ActionCreated", {"data": {"engine_name": "no_op_engine", "action_type_name": "t",
                                                    "state": "HAS_NEVER_RUN", "workflow_instance_id": instance_id}})
        append(store, a, "ActionQueued", {"changes": {"state": "QUEUED", "queued_time": at(queued)}})
        append(store, a, "ActionCheckedOut", {"start_time": at(queued + 2)})
        if i == 0:
            append(store, stream, "WorkflowInstanceStarted", {"start_time": at(queued + 2)})
        ended = "ActionCancelled" if end == "WorkflowInstanceCancelled" else "ActionCompleted"
        append(store, a, ended, {"changes": {"state": state, "end_time": at(queued + 2 + ran)}})
    append(store, stream, end, {"changes": {"state": "FAILED" if "Completed" not in end else "COMPLETED"}})


def rows(store: EventStore) -> dict[str, list[Any]]:
    with store.engine.connect() as conn:
        return {name: sorted(tuple(r) for r in conn.execute(sa.select(table)))
                for name, table in RunStats().tables.items()}


def test_known_runs_give_known_counts_and_buckets_and_a_rebuild_gives_the_same_rows(
        projected_store: EventStore) -> None:
    store = projected_store
    run(store, "WF1", "I1", [("A1", 1, 10, "COMPLETED"), ("A2", 20, 100, "COMPLETED")], "WorkflowInstanceCompleted")
    run(store, "WF1", "I2", [("A3", 3, 4000, "FAILED")], "WorkflowInstanceFailed")
    run(store, "WF2", "I3", [("A4", 0, 0.5, "FAILED")], "WorkflowInstanceCancelled")
    append(store, "workflow_instance-I4", "WorkflowInstanceCreated", {"data": {"workflow_id": "WF2", "state": "FAILED"}})
    append(store, "action-TPL", "ActionCreated", {"data": {"engine_name": "no_op_engine", "action_type_name": "t",
                                                           "state": "TEMPLATE"}})

    sub = subscription_for(store, RunStats(), batch_size=3)  # small batches: rows carried across transactions
    while sub.run_once():
        pass
    with store.engine.connect() as conn:
        outcomes = sorted(read_outcomes(conn))
        histograms = {(m, tuple(sorted(labels.items()))): (cumulative, total, count)
                      for m, labels, _, cumulative, total, count in read_histograms(conn)}
    assert outcomes == [("WF1", "completed", 1), ("WF1", "failed", 1), ("WF1", "started", 2),
                        ("WF2", "cancelled", 1), ("WF2", "failed", 1), ("WF2", "started", 2)]
    engine = (("action_type", "t"), ("engine", "no_op_engine"))
    durations, total, count = histograms[("action_duration", engine)]
    assert (total, count) == (10 + 100 + 4000 + 0.5, 4)
    # cumulative per bound (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, ...): 0.5 | 10 | 100 | 4000
    assert durations == [1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4] and len(durations) == len(DURATION_BUCKETS) + 1
    assert histograms[("action_queue_wait", engine)][1:] == (2.0 * 4, 4)
    assert histograms[("trigger_to_first_action", (("workflow_id", "WF1"),))][1:] == (3.0 + 5.0, 2)
    assert histograms[("trigger_to_first_action", (("workflow_id", "WF2"),))][1:] == (2.0, 1)
    live = rows(store)
    assert live["stats_open_actions"] == [] and live["stats_open_instances"] == []  # every run ended

    [result] = rebuild_all(store, [RunStats.name]).results
    assert result.name == RunStats.name
    assert rows(store) == live
