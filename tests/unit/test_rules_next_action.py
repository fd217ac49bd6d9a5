"""The next-action choice for a datastore (services/domain/next_action.py), on plain dicts."""

from __future__ import annotations

from typing import Any

from events.types import Metadata
from services.domain.next_action import (
    choose_next,
    consumed_subscription,
    live_after,
    one_consumer_per_subscription,
    queue_appends,
    queueing_clashes,
    to_queue,
)
from services.domain.rows import Entity
from tests.unit.rules_world import payload


def action(action_id: str, state: str = "HAS_NEVER_RUN", order: float = 0, workflow: str | None = "W",
           **data: Any) -> dict[str, Any]:
    return {"id": action_id, "_version": 1, "state": state, "order_idx": order, "workflow_id": workflow, **data}


def consumer(action_id: str, subscription_id: str, order: float) -> dict[str, Any]:
    return action(action_id, order=order, workflow=f"w{action_id}", action_type_name="consume_subscription",
                  args={"subscription_id": subscription_id})


def ids(actions: list[Any]) -> list[str]:
    return [a["id"] for a in actions]


def test_the_waiting_action_with_the_lowest_order_idx_of_a_workflow_is_chosen() -> None:
    assert ids(choose_next([action("B", order=2), action("A", order=1), action("C", order=3)])) == ["A"]


def test_equal_order_idx_is_broken_by_id() -> None:
    assert ids(choose_next([action("B", order=1), action("A", order=1)])) == ["A"]


def test_a_workflow_with_an_action_in_flight_gets_nothing_more() -> None:
    for busy in ("QUEUED", "PENDING", "RUNNING", "FINISHING"):
        assert choose_next([action("A", busy, 1), action("B", order=2)]) == [], busy


def test_finished_actions_do_not_hold_their_workflow_back() -> None:
    for done in ("COMPLETED", "FAILED", "SKIPPED"):
        assert ids(choose_next([action("A", done, 1), action("B", order=2)])) == ["B"], done


def test_each_workflow_and_one_ad_hoc_action_are_chosen_at_once() -> None:
    actions = [action("A1", order=1, workflow="A"), action("A2", order=2, workflow="A"),
               action("B1", order=3, workflow="B"), action("X", order=4, workflow=None),
               action("Y", order=5, workflow=None)]
    assert ids(choose_next(actions)) == ["A1", "B1", "X"]


def test_an_ad_hoc_action_in_flight_holds_back_the_other_ad_hoc_ones_only() -> None:
    actions = [action("X", "RUNNING", 1, workflow=None), action("Y", order=2, workflow=None), action("A", order=3)]
    assert ids(choose_next(actions)) == ["A"]


def test_only_one_consumer_of_a_subscription_is_queued_per_decision() -> None:
    chosen = [consumer("C1", "S", 1), consumer("C2", "S", 2), consumer("C3", "T", 3), action("P")]
    assert ids(one_consumer_per_subscription(chosen)) == ["C1", "C3", "P"]
    assert ids(to_queue(chosen)) == ["P", "C1", "C3"]  # by order_idx


def test_the_consumed_subscription_is_read_from_a_consume_subscription_action_only() -> None:
    assert consumed_subscription(consumer("C", "S", 1)) == "S"
    assert consumed_subscription(action("A", args={"subscription_id": "S"})) is None
    assert consumed_subscription(action("A", action_type_name="consume_subscription", args={})) is None


def test_queueing_is_guarded_by_the_datastore_and_action_versions_it_was_decided_on() -> None:
    datastore = Entity("D", 7, {"state": "ACTIVE"})
    appends = queue_appends(datastore, [action("A"), {**action("B"), "_version": 3}], "2026-01-01T00:00:00",
                            Metadata(actor="orchestrator"))
    assert [(a.stream_id, a.expected_version) for a in appends] == [("datastore-D", 7), ("action-A", 1),
                                                                     ("action-B", 3)]
    assert payload(appends[0].events[0]) == {"note": {"queued": ["A", "B"]}}
    assert payload(appends[1].events[0])["changes"] == {"state": "QUEUED",
                                                               "queued_time": "2026-01-01T00:00:00"}
    assert queue_appends(datastore, [], "t", Metadata()) == []


def test_a_completion_leaves_out_the_actions_it_finishes_and_cannot_share_a_stream_with_the_queueing() -> None:
    live = [action("A", "FINISHING", 1), action("B", order=2), action("C", order=3, workflow="V")]
    assert ids(live_after(live, {"action-A", "workflow-W"})) == ["B", "C"]
    assert ids(to_queue(live_after(live, {"action-A"}))) == ["B", "C"]
    queueing = queue_appends(Entity("D", 1, {}), [action("B")], "t", Metadata())
    assert queueing_clashes(queueing, {"action-A", "datastore-D"})  # the completion deactivates the datastore
    assert not queueing_clashes(queueing, {"action-A", "workflow_instance-I"})
