"""The second line of defence against trigger loops (issue 11, finding 13), on SQLite and PostgreSQL: loops
saved before the rule refusing them existed (appended here straight to the log) stop after a chain of
MAX_FIRE_DEPTH fires caused by fires, recorded as TriggerFireSkipped with the reason; and a trigger allowing a
loop fires at most once per its interval. The orchestrator's handlers are called directly, in log order."""

from __future__ import annotations

import uuid
from typing import Any

from events.streams.trigger import TriggerCreated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.commands.actions import complete_action, try_next_actions
from services.commands.runs import Fire, start_instance
from services.commands.triggers import fire_event, on_instance_completed, on_trigger_fired
from services.domain.trigger_graph import MAX_FIRE_DEPTH
from tests.support.world import SUCCEEDS, World

ROUNDS = 4 * MAX_FIRE_DEPTH  # a loop still going after this many deliveries was not stopped


def saved_before_the_rule(world: World, trigger_id: str, kind: str, args: dict[str, Any],
                          workflow_ids: list[str]) -> None:
    world.store.append(StreamAppend(f"trigger-{trigger_id}", ExpectedVersion.NO_STREAM, [NewEvent(TriggerCreated({
        "name": trigger_id.lower(), "trigger_type_name": kind, "state": "ACTIVE", "args": args,
        "workflow_ids": workflow_ids, "tags": [], "user_id": "old@example.com"}), Metadata(actor="test"))]))


def events(world: World, after: int, *types: str) -> list[Any]:
    return world.store.read_all(after, 10_000, types=list(types))


def skipped_reasons(world: World, trigger_id: str) -> list[str]:
    return [e.data["note"]["reason"] for e in world.store.read_stream(f"trigger-{trigger_id}")
            if e.type == "TriggerFireSkipped"]


def test_two_super_triggers_naming_each_other_stop_after_the_fixed_depth(world: World) -> None:
    event_id = world.event()
    on_event = world.trigger("event", {"event_id": event_id}, [])
    saved_before_the_rule(world, "SUPERLOOP1", "super", {"fire_after": "ANY",
                                                         "completed_trigger_ids": [on_event, "SUPERLOOP2"]}, [])
    saved_before_the_rule(world, "SUPERLOOP2", "super", {"fire_after": "ANY", "completed_trigger_ids": ["SUPERLOOP1"]},
                          [])
    position = world.store.head_position()
    assert fire_event(world.orch, event_id, uuid.uuid4()) == [on_event]
    for _ in range(ROUNDS):  # the orchestrator: every TriggerFired feeds the super triggers watching it
        fired = events(world, position, "TriggerFired")
        if not fired:
            break
        position = fired[-1].global_position
        for event in fired:
            on_trigger_fired(world.orch, event.entity_id, event.event_id)
    else:
        raise AssertionError("the super trigger loop never stopped")
    loop_fires = [e for e in world.store.read_all(0, 10_000, types=["TriggerFired"]) if "SUPERLOOP" in e.stream_id]
    assert len(loop_fires) == MAX_FIRE_DEPTH
    assert max(e.data["note"]["depth"] for e in loop_fires) == MAX_FIRE_DEPTH
    reasons = skipped_reasons(world, "SUPERLOOP1") + skipped_reasons(world, "SUPERLOOP2")
    assert len(reasons) == 1 and "fire chain too deep" in reasons[0]


def _run_to_the_end(world: World, position: int) -> int:
    """Complete every live action of the log's new runs and hand each completed run to the
    workflow_completion triggers, until nothing new starts; returns how many runs completed."""
    completed = 0
    for _ in range(ROUNDS):
        created = events(world, position, "WorkflowInstanceCreated", "WorkflowInstanceCompleted")
        if not created:
            return completed
        position = created[-1].global_position
        for event in created:
            if event.type == "WorkflowInstanceCompleted":
                completed += 1
                instance = world.orch.reader.row("workflow_instance", event.entity_id)
                on_instance_completed(world.orch, instance.data["workflow_id"], instance.id, event.event_id)
                continue
            instance = world.orch.reader.row("workflow_instance", event.entity_id)
            try_next_actions(world.orch, str(instance.data["datastore_id"]), uuid.uuid4())
            for action in sorted(world.orch.actions_of_instance(instance.id), key=lambda a: a["order_idx"]):
                complete_action(world.orch, action["id"], "COMPLETED", None, uuid.uuid4())
    raise AssertionError("the workflow loop never stopped")


def test_a_workflow_completion_trigger_starting_its_own_workflow_stops_after_the_fixed_depth(world: World) -> None:
    flow = world.workflow(world.datastore(state="TEMPLATE"), [{"name": "a0", "action_type_name": SUCCEEDS}],
                          concurrency=5)
    saved_before_the_rule(world, "SELFLOOP01", "workflow_completion", {"completed_workflow_id": flow}, [flow])
    position = world.store.head_position()
    start_instance(world.orch, flow, Fire("manual", cause=uuid.uuid4()))
    runs = _run_to_the_end(world, position)
    assert runs == MAX_FIRE_DEPTH + 2  # the manual run, then the loop's fires at depths 0 .. MAX_FIRE_DEPTH
    [reason] = skipped_reasons(world, "SELFLOOP01")
    assert "fire chain too deep" in reason


def test_a_loop_allowed_with_an_interval_fires_at_most_once_per_interval(world: World) -> None:
    flow = world.workflow(world.datastore(state="TEMPLATE"), [{"name": "a0", "action_type_name": SUCCEEDS}],
                          concurrency=5)
    world.trigger("workflow_completion", {"completed_workflow_id": flow, "allow_cycle_min_interval_seconds": 3600},
                  [flow])  # allowed: the rule lets it be saved
    position = world.store.head_position()
    start_instance(world.orch, flow, Fire("manual", cause=uuid.uuid4()))
    assert _run_to_the_end(world, position) == 2  # the manual run and one fire; the next is within the hour
    [trigger] = world.service.reader.find_by("trigger", trigger_type_name="workflow_completion")
    [reason] = skipped_reasons(world, trigger["id"])
    assert "allow_cycle_min_interval_seconds" in reason and "3600" in reason
