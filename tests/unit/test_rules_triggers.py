"""Trigger matching and the super ALL/ANY rule (services/domain/trigger_rules.py), on plain data."""

from __future__ import annotations

import uuid
from typing import Any

from services.domain.rows import Entity
from services.domain.trigger_rules import (
    fire_append,
    fired_event_id,
    fires_on_any,
    input_event_id,
    super_all_input,
    watching_event,
    watching_trigger,
    watching_workflow,
)
from tests.unit.rules_world import payload


def trigger(trigger_id: str, args: dict[str, Any], workflow_ids: list[str] | None = None, **data: Any) -> Entity:
    return Entity(trigger_id, 3, {"args": args, "workflow_ids": workflow_ids or [], **data})


def test_workflow_completion_and_event_triggers_match_on_their_argument() -> None:
    on_w = trigger("T1", {"completed_workflow_id": "W"})
    on_v = trigger("T2", {"completed_workflow_id": "V"})
    assert watching_workflow([on_w, on_v], "W") == [on_w]
    on_e = trigger("T3", {"event_id": "E"})
    assert watching_event([on_e, on_w], "E") == [on_e] and watching_event([on_e], "F") == []


def test_super_triggers_watch_the_triggers_among_their_inputs() -> None:
    watcher = trigger("S", {"fire_after": "ANY", "completed_trigger_ids": ["A", "B"]})
    assert watching_trigger([watcher], "B") == [watcher] and watching_trigger([watcher], "C") == []
    assert fires_on_any(watcher) and not fires_on_any(trigger("S", {}))  # ALL is the default


def test_a_fire_records_its_key_and_workflows_with_an_id_its_cause_derives() -> None:
    cause = uuid.uuid4()
    append = fire_append(trigger("T", {}, ["W1", "W2"]), cause, "instance:I")
    assert append.stream_id == "trigger-T" and append.expected_version == 3
    assert payload(append.events[0]) == {"note": {"key": "instance:I", "workflow_ids": ["W1", "W2"]}}
    assert append.events[0].event_id == fired_event_id(cause, "T")


def test_super_all_records_each_input_and_does_not_fire_before_every_input_is_in() -> None:
    cause = uuid.uuid4()
    decision = super_all_input(trigger("S", {"completed_trigger_ids": ["A", "B"]}, ["W"]), "A", cause, "t1")
    assert decision.fired is None and len(decision.append.events) == 1
    recorded = decision.append.events[0]
    assert recorded.event_id == input_event_id(cause, "S")
    assert payload(recorded) == {"changes": {"extra_data": {"completed_trigger_id_times": {"A": "t1"}}}}


def test_super_all_fires_once_the_last_input_is_in_and_resets_in_the_same_append() -> None:
    cause = uuid.uuid4()
    waiting = trigger("S", {"completed_trigger_ids": ["A", "B"]}, ["W"],
                      extra_data={"completed_trigger_id_times": {"A": "t1"}, "kept": 1})
    decision = super_all_input(waiting, "B", cause, "t2")
    assert decision.fired == {"key": "all:A,B", "workflow_ids": ["W"]}
    record, fired = decision.append.events
    assert payload(record) == {"changes": {"extra_data": {"completed_trigger_id_times": {}, "kept": 1}}}
    assert fired.event.type_name == "TriggerFired" and fired.event_id == fired_event_id(cause, "S")
    assert decision.append.expected_version == 3  # guarded by the version the inputs were read at


def test_super_all_with_one_input_fires_at_once() -> None:
    assert super_all_input(trigger("S", {"completed_trigger_ids": ["A"]}), "A", uuid.uuid4(), "t").fired is not None
