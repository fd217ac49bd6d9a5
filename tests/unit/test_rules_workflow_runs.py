"""Millisecond twins of tests/e2e/test_workflow_runs.py: the same cases, decided by the rules of
services/domain over an in-memory world (tests/unit/rules_world.py) instead of whole `dart up` processes."""

from __future__ import annotations

import uuid

from tests.unit.rules_world import FAILS, SUCCEEDS, World


def test_workflow_chaining() -> None:
    world = World()
    wf0, wf1 = world.workflow([SUCCEEDS, SUCCEEDS]), world.workflow([SUCCEEDS, SUCCEEDS])
    world.trigger("workflow_completion", {"completed_workflow_id": wf0}, [wf1])
    world.manual(wf0)
    world.run()
    assert [i.data["state"] for i in world.instances(wf0)] == ["COMPLETED"]
    [chained] = world.instances(wf1)
    assert chained.data["state"] == "COMPLETED" and chained.data["trigger_type"] == "workflow_completion"
    first, second = world.instance_actions(chained.id)
    assert (first["state"], second["state"]) == ("COMPLETED", "COMPLETED")
    assert first["first_in_workflow"] and second["last_in_workflow"]
    assert first["end_time"] <= second["start_time"]  # strictly in order


def test_the_next_action_is_queued_in_the_completion_of_the_previous_one() -> None:
    world = World()
    flow = world.workflow([SUCCEEDS, SUCCEEDS])
    world.manual(flow)
    world.deliver()
    [running] = world.running()
    world.check_in(running["id"])
    before = len(world.log)
    world.complete(running["id"], "COMPLETED", None, uuid.uuid4())  # what delivering the check-in does
    appended = [r.type for r in world.log[before:]]
    assert appended[0] == "ActionCompleted" and "ActionQueued" in appended and "DatastoreSlotTaken" in appended


def test_workflow_failure() -> None:
    world = World()
    flow = world.workflow([FAILS], datastore_state="ACTIVE")
    world.manual(flow)
    world.run()
    [instance] = world.instances(flow)
    assert instance.data["state"] == "FAILED" and "failed as expected" in instance.data["error_message"]
    assert world.state("workflow", flow) == "INACTIVE"
    assert world.state("datastore", world.data("workflow", flow)["datastore_id"]) == "INACTIVE"
    assert "not ACTIVE" in (world.manual(flow).refused or "")


def test_super_trigger_workflow_chaining() -> None:
    world = World()
    wf0, wf1 = world.workflow([SUCCEEDS]), world.workflow([SUCCEEDS])
    wc = world.trigger("workflow_completion", {"completed_workflow_id": wf0}, [])
    world.trigger("super", {"fire_after": "ALL", "completed_trigger_ids": [wc]}, [wf1])
    world.manual(wf0)
    world.run()
    assert [i.data["state"] for i in world.instances(wf1)] == ["COMPLETED"]


def test_super_trigger_super_trigger() -> None:
    world = World()
    wf0, wf1 = world.workflow([SUCCEEDS, SUCCEEDS]), world.workflow([SUCCEEDS])
    wc = world.trigger("workflow_completion", {"completed_workflow_id": wf0}, [])
    super1 = world.trigger("super", {"fire_after": "ALL", "completed_trigger_ids": [wc]}, [])
    world.trigger("super", {"fire_after": "ANY", "completed_trigger_ids": [super1]}, [wf1])
    world.manual(wf0)
    world.run()
    assert [i.data["state"] for i in world.instances(wf1)] == ["COMPLETED"]
    assert [i.data["trigger_type"] for i in world.instances(wf1)] == ["super"]


def test_super_all_waits_for_every_input_and_resets_after_firing() -> None:
    world = World()
    wf_a, wf_b = world.workflow([SUCCEEDS]), world.workflow([SUCCEEDS])
    target = world.workflow([SUCCEEDS], concurrency=2)
    ta = world.trigger("workflow_completion", {"completed_workflow_id": wf_a}, [])
    tb = world.trigger("workflow_completion", {"completed_workflow_id": wf_b}, [])
    both = world.trigger("super", {"fire_after": "ALL", "completed_trigger_ids": [ta, tb]}, [target])
    world.manual(wf_a)
    world.run()
    assert ta in world.data("trigger", both)["extra_data"]["completed_trigger_id_times"]
    assert world.instances(target) == []
    world.manual(wf_b)
    world.run()
    assert [i.data["state"] for i in world.instances(target)] == ["COMPLETED"]
    assert world.data("trigger", both)["extra_data"]["completed_trigger_id_times"] == {}


def test_skipped_cascade_after_a_failure() -> None:
    world = World()
    flow = world.workflow([SUCCEEDS, FAILS, SUCCEEDS, SUCCEEDS])
    world.manual(flow)
    world.run()
    [instance] = world.instances(flow)
    actions = world.instance_actions(instance.id)
    assert [a["state"] for a in actions] == ["COMPLETED", "FAILED", "SKIPPED", "SKIPPED"]
    assert "A prior action" in actions[2]["error_message"]


def test_retries_create_retry_instances_then_deactivate() -> None:
    world = World()
    flow = world.workflow([FAILS], retries_on_failure=2)
    world.manual(flow)
    world.run()
    runs = world.instances(flow)
    assert [(i.data["trigger_type"], i.data["retry_num"]) for i in runs] == [("manual", 0), ("retry", 1), ("retry", 2)]
    assert all(i.data["state"] == "FAILED" for i in runs)
    assert world.state("workflow", flow) == "INACTIVE"


def test_halt_fails_the_instance_but_keeps_the_workflow_active() -> None:
    world = World()
    flow = world.workflow([FAILS, SUCCEEDS], on_failure=["HALT", ""])
    world.manual(flow)
    world.run()
    [instance] = world.instances(flow)
    assert instance.data["state"] == "FAILED"
    assert [a["state"] for a in world.instance_actions(instance.id)] == ["FAILED", "SKIPPED"]
    assert world.state("workflow", flow) == "ACTIVE"


def test_continue_on_failure_runs_the_rest_and_completes() -> None:
    world = World()
    flow = world.workflow([FAILS, SUCCEEDS], on_failure=["CONTINUE", ""])
    world.manual(flow)
    world.run()
    [instance] = world.instances(flow)
    assert instance.data["state"] == "COMPLETED"
    assert [a["state"] for a in world.instance_actions(instance.id)] == ["FAILED", "COMPLETED"]


def test_concurrency_third_manual_trigger_refused_and_two_overlap() -> None:
    world = World()
    flow = world.workflow([SUCCEEDS], concurrency=2)
    assert world.manual(flow).instance_id and world.manual(flow).instance_id
    assert world.manual(flow).refused == "Max concurrency reached: 2"
    world.deliver()
    assert len(world.running()) == 2  # each run on its own cloned datastore: both engines run at once
    world.run()
    runs = world.instances(flow)
    assert [i.data["state"] for i in runs] == ["COMPLETED", "COMPLETED"]
    first, second = (world.instance_actions(i.id)[0] for i in runs)
    assert first["start_time"] < second["end_time"] and second["start_time"] < first["end_time"]


def test_a_shared_datastore_runs_one_engine_at_a_time_at_concurrency_one() -> None:
    world = World()
    flow = world.workflow([SUCCEEDS], datastore_state="ACTIVE", concurrency=2)
    world.manual(flow)
    world.manual(flow)
    world.deliver()
    assert len(world.running()) == 1  # one action per workflow in flight on a datastore
    world.run()
    assert [i.data["state"] for i in world.instances(flow)] == ["COMPLETED", "COMPLETED"]


def test_template_averages_and_completed_runs_are_kept() -> None:
    world = World()
    flow = world.workflow([SUCCEEDS])
    world.manual(flow)
    world.run()
    [template] = world.actions(workflow_id=flow, state="TEMPLATE")
    assert template["completed_runs"] == 1 and template["avg_runtime"] == "0:00:02"  # checked out, in, done
    # The workflow's average sums its templates' averages, the last action's own update included (issue 11:
    # it used to be left out until the next run, so this read 0:00:00).
    assert world.data("workflow", flow)["avg_runtime"] == "0:00:02"
    world.manual(flow)
    world.run()
    assert world.data("workflow", flow)["avg_runtime"] == "0:00:02"


def test_a_workflow_s_average_counts_every_action() -> None:
    world = World()
    flow = world.workflow([SUCCEEDS] * 4)
    world.manual(flow)
    world.run()
    averages = [t["avg_runtime"] for t in world.actions(workflow_id=flow, state="TEMPLATE")]
    assert averages == ["0:00:02"] * 4
    assert world.data("workflow", flow)["avg_runtime"] == "0:00:08"  # was 0:00:06: the last action left out
