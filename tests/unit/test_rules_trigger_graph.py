"""Trigger loops refused (services/domain/trigger_graph.py), on plain data: workflow_completion and super
triggers that would fire themselves, named as a path, unless a trigger on the loop allows it."""

from __future__ import annotations

from typing import Any

from services.domain.trigger_graph import (
    MAX_FIRE_DEPTH,
    TriggerLinks,
    chain_depth,
    find_loop,
    links,
    loop_refusal,
    min_interval,
    too_deep,
)


def completion(trigger_id: str, watched: str, starts: list[str], **args: Any) -> TriggerLinks:
    return links(trigger_id, {"trigger_type_name": "workflow_completion", "workflow_ids": starts,
                              "args": {"completed_workflow_id": watched, **args}})


def super_(trigger_id: str, inputs: list[str], starts: list[str] | None = None, **args: Any) -> TriggerLinks:
    return links(trigger_id, {"trigger_type_name": "super", "workflow_ids": starts or [],
                              "args": {"fire_after": "ANY", "completed_trigger_ids": inputs, **args}})


def test_a_workflow_completion_trigger_starting_the_workflow_it_waits_on_is_a_loop() -> None:
    refused = loop_refusal([], completion("T1", "W1", ["W1"]))
    assert refused is not None
    assert "trigger T1 -> workflow W1 -> trigger T1 is a loop" in refused
    assert "allow_cycle_min_interval_seconds" in refused


def test_a_loop_through_other_triggers_and_workflows_is_named_hop_by_hop() -> None:
    others = [completion("T2", "W2", ["W1"])]
    refused = loop_refusal(others, completion("T1", "W1", ["W2"]))
    assert refused is not None and refused.startswith(
        "args: trigger T1 -> workflow W2 -> trigger T2 -> workflow W1 -> trigger T1 is a loop")


def test_two_super_triggers_naming_each_other_are_a_loop() -> None:
    others = [super_("S2", ["S1"])]
    refused = loop_refusal(others, super_("S1", ["S2"]))
    assert refused is not None and "trigger S1 -> trigger S2 -> trigger S1" in refused
    assert loop_refusal([], super_("S1", ["S1"])) is not None  # a super naming itself


def test_a_super_trigger_closing_a_loop_through_a_workflow_is_refused() -> None:
    others = [completion("T1", "W1", [])]  # W1's completion fires T1
    refused = loop_refusal(others, super_("S", ["T1"], ["W1"]))  # T1 -> S -> W1 -> T1
    assert refused is not None and "trigger S -> workflow W1 -> trigger T1 -> trigger S" in refused


def test_chains_without_a_loop_are_accepted() -> None:
    others = [completion("T2", "W2", ["W3"]), super_("S", ["T2"], ["W4"])]
    assert loop_refusal(others, completion("T1", "W1", ["W2"])) is None
    assert loop_refusal([], links("E", {"trigger_type_name": "event", "workflow_ids": ["W1"],
                                        "args": {"event_id": "X"}})) is None


def test_a_loop_is_allowed_when_a_trigger_on_it_has_a_minimum_interval() -> None:
    assert loop_refusal([], completion("T1", "W1", ["W1"], allow_cycle_min_interval_seconds=60)) is None
    others = [completion("T2", "W2", ["W1"], allow_cycle_min_interval_seconds=60)]
    assert loop_refusal(others, completion("T1", "W1", ["W2"])) is None  # every turn passes through T2


def test_an_allowed_loop_does_not_hide_another_loop_without_one() -> None:
    others = [completion("T2", "W2", ["W1"], allow_cycle_min_interval_seconds=60), completion("T3", "W3", ["W1"])]
    changed = completion("T1", "W1", ["W2", "W3"])
    assert find_loop([*others, changed], "T1") == [("trigger", "T1"), ("workflow", "W3"), ("trigger", "T3"),
                                                   ("workflow", "W1"), ("trigger", "T1")]


def test_the_changed_trigger_replaces_its_stored_self() -> None:
    stored = completion("T1", "W1", ["W1"])  # as saved before the rule existed
    assert loop_refusal([stored], completion("T1", "W1", ["W2"])) is None
    assert loop_refusal([stored], completion("T1", "W1", ["W1"])) is not None


def test_the_minimum_interval_is_a_number_of_seconds() -> None:
    assert min_interval({"args": {"allow_cycle_min_interval_seconds": 30}}) == 30.0
    assert min_interval({"args": {}}) is None and min_interval({}) is None
    assert min_interval({"args": {"allow_cycle_min_interval_seconds": True}}) is None


def test_fire_depth_grows_along_a_chain_and_is_refused_past_the_limit() -> None:
    assert chain_depth(None, False) == 0  # an event, a schedule, a batch: a chain's first fire
    assert chain_depth(3, False) == 4
    assert chain_depth(3, True) == 0  # a trigger allowing loops starts a new chain
    assert too_deep(MAX_FIRE_DEPTH) is None
    message = too_deep(MAX_FIRE_DEPTH + 1)
    assert message is not None and "fire chain too deep" in message
