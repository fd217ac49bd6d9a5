"""Run control's pure rules (services/domain/run_control.py): Step Functions' retry delays, the timeouts, and
what a cancel appends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.types import Metadata
from services.domain import run_control
from services.domain.next_action import choose_next
from services.domain.rows import Entity

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("policy", "draw", "delays"), [
    ({"retries": 4}, 1.0, [1, 2, 4, 8]),  # the defaults: 1 s, rate 2
    ({"retries": 4, "retry_delay_seconds": 3, "retry_backoff_rate": 1}, 1.0, [3, 3, 3, 3]),
    ({"retries": 5, "retry_delay_seconds": 2, "retry_backoff_rate": 3, "retry_max_delay_seconds": 20}, 1.0,
     [2, 6, 18, 20, 20]),
    ({"retries": 3, "retry_delay_seconds": 4, "retry_jitter": "full"}, 0.25, [1, 2, 4]),  # a quarter of each
])
def test_retry_delays_follow_step_functions(policy: dict, draw: float, delays: list[float]) -> None:
    rule = run_control.RetryPolicy.of(policy)
    assert [rule.delay_before(attempt, draw) for attempt in range(2, 2 + len(delays))] == delays


def test_retries_left_counts_attempts_and_only_failures() -> None:
    assert run_control.retries_left({"retries": 2}, "FAILED")
    assert run_control.retries_left({"retries": 2, "attempt": 2}, "FAILED")
    assert not run_control.retries_left({"retries": 2, "attempt": 3}, "FAILED")
    assert not run_control.retries_left({"retries": 2}, "COMPLETED")
    assert not run_control.retries_left({}, "FAILED")


def test_the_next_attempt_is_a_fresh_action_in_the_same_place() -> None:
    failed = Entity("A1", 5, {"name": "load", "state": "FAILED", "retries": 1, "retry_delay_seconds": 30,
                           "workflow_instance_id": "I", "order_idx": 2, "start_time": "x", "end_time": "y",
                           "error_message": "boom", "ecs_task_arn": "local:1"})
    append, due = run_control.next_attempt(failed, "A2", NOW, 1.0, Metadata(actor="t"))
    data = append.events[0].event.data  # type: ignore[attr-defined]
    assert append.stream_id == "action-A2" and due == NOW + timedelta(seconds=30)
    assert data["state"] == "HAS_NEVER_RUN" and data["attempt"] == 2 and data["retry_of"] == "A1"
    assert data["not_before"] == due.isoformat() and data["order_idx"] == 2 and data["workflow_instance_id"] == "I"
    assert not {"start_time", "end_time", "error_message", "ecs_task_arn"} & set(data)


def test_a_waiting_attempt_holds_its_workflow_until_it_is_due() -> None:
    later = (NOW + timedelta(seconds=10)).isoformat()
    waiting = [{"id": "r", "state": "HAS_NEVER_RUN", "workflow_id": "W", "order_idx": 1, "not_before": later},
               {"id": "n", "state": "HAS_NEVER_RUN", "workflow_id": "W", "order_idx": 2}]
    assert choose_next(waiting, NOW) == []
    assert [a["id"] for a in choose_next(waiting, NOW + timedelta(seconds=10))] == ["r"]


def test_timeouts_use_the_action_s_own_then_the_datastore_s() -> None:
    started = (NOW - timedelta(seconds=60)).isoformat()
    assert run_control.timed_out({"start_time": started, "timeout_seconds": 60}, None, NOW) == 60
    assert run_control.timed_out({"start_time": started, "timeout_seconds": 61}, None, NOW) is None
    assert run_control.timed_out({"start_time": started}, {"action_timeout_seconds": 30}, NOW) == 30
    assert run_control.timed_out({"start_time": started}, {}, NOW) is None
    assert run_control.launch_timed_out({}, {"launch_timeout_seconds": 5}, NOW - timedelta(seconds=5), NOW) == 5
    assert run_control.launch_timed_out({}, {}, NOW - timedelta(days=1), NOW) is None
    queued = {"queued_time": (NOW - timedelta(seconds=90)).isoformat()}
    assert run_control.instance_timed_out(queued, {"max_runtime_seconds": 90}, NOW) == 90
    assert run_control.instance_timed_out(queued, {"max_runtime_seconds": 91}, NOW) is None


def test_a_cancel_fails_what_runs_skips_what_waits_and_leaves_the_rest() -> None:
    instance = Entity("I", 3, {"state": "RUNNING"})
    actions = [{"id": "done", "_version": 4, "state": "COMPLETED"}, {"id": "run", "_version": 3, "state": "RUNNING"},
               {"id": "next", "_version": 1, "state": "HAS_NEVER_RUN"}]
    appends = run_control.cancel_appends(instance, actions, "cancelled by op", "op", NOW, Metadata(actor="op"))
    assert [(a.stream_id, a.expected_version, a.events[0].event.type_name) for a in appends] == [
        ("workflow_instance-I", 3, "WorkflowInstanceCancelled"), ("action-run", 3, "ActionCancelled"),
        ("action-next", 1, "ActionSkipped")]
    assert run_control.not_cancellable(Entity("J", 1, {"state": "COMPLETED"})) == (
        "workflow instance J is COMPLETED: only a QUEUED or RUNNING instance can be cancelled")
