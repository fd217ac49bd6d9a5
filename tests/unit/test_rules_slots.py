"""The free-slot rule: datastore concurrency (services/domain/slots.py), on plain dicts."""

from __future__ import annotations

import itertools
import random
from typing import Any

from events.types import Metadata
from services.domain.slots import BUSY, free_slots, pending_appends, slots_to_take
from tests.unit.rules_world import payload


def action(action_id: str, state: str = "QUEUED", queued: str = "t1", order: float = 0) -> dict[str, Any]:
    return {"id": action_id, "_version": 2, "state": state, "queued_time": queued, "order_idx": order}


def test_an_active_datastore_with_a_free_slot_gives_it_to_the_oldest_queued_action() -> None:
    live = [action("B", queued="t2"), action("A", queued="t1"), action("C", queued="t3")]
    assert [a["id"] for a in slots_to_take({"state": "ACTIVE"}, live)] == ["A"]


def test_equal_queued_times_go_by_order_idx() -> None:
    live = [action("B", order=2), action("A", order=1)]
    assert [a["id"] for a in slots_to_take({"state": "ACTIVE", "concurrency": 1}, live)] == ["A"]


def test_busy_actions_fill_the_concurrency() -> None:
    for busy in BUSY:
        live = [action("R", busy), action("Q1", queued="t1"), action("Q2", queued="t2")]
        assert [a["id"] for a in slots_to_take({"state": "ACTIVE", "concurrency": 2}, live)] == ["Q1"], busy
        assert slots_to_take({"state": "ACTIVE", "concurrency": 1}, live) == [], busy


def test_an_inactive_or_template_datastore_gives_no_slot() -> None:
    for state in ("INACTIVE", "TEMPLATE", "DONE", None):
        assert slots_to_take({"state": state, "concurrency": 5}, [action("A")]) == []


def test_an_over_full_datastore_gives_nothing_and_reports_negative_room() -> None:
    live = [action("R1", "RUNNING"), action("R2", "RUNNING"), action("Q")]
    assert free_slots({"concurrency": 1}, live) == -1
    assert slots_to_take({"state": "ACTIVE", "concurrency": 1}, live) == []


def test_the_concurrency_is_never_exceeded_whatever_the_order_of_decisions() -> None:
    rng = random.Random(7)
    for concurrency, queued in itertools.product((1, 2, 3), (1, 4, 9)):
        live = [action(f"Q{i}", queued=f"t{rng.random()}") for i in range(queued)]
        datastore = {"state": "ACTIVE", "concurrency": concurrency}
        while True:
            taken = slots_to_take(datastore, live)
            if not taken:
                break
            by_id = {a["id"]: a for a in live}
            for a in taken:
                by_id[a["id"]]["state"] = "PENDING"
            assert sum(a["state"] in BUSY for a in live) <= concurrency
            finished = rng.choice([a for a in live if a["state"] in BUSY])
            finished["state"] = "COMPLETED"
        assert all(a["state"] == "COMPLETED" or a["state"] in BUSY for a in live)


def test_the_launch_intent_is_guarded_by_the_datastore_version_and_moves_each_action_to_pending() -> None:
    appends = pending_appends("D", 9, [action("A"), action("B")], Metadata(actor="launcher"))
    assert [(a.stream_id, a.expected_version) for a in appends] == [("datastore-D", 9), ("action-A", 2),
                                                                     ("action-B", 2)]
    assert payload(appends[0].events[0]) == {"note": {"pending": ["A", "B"]}}
    assert payload(appends[1].events[0]) == {"changes": {"state": "PENDING"}}
    assert pending_appends("D", 9, [], Metadata()) == []
