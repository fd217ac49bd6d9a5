"""State and concurrency at run start (services/domain/run_start.py), on plain data."""

from __future__ import annotations

import uuid
from typing import Any

from services.domain.rows import Entity
from services.domain.run_start import (
    Fire,
    concurrency_refusal,
    datastore_failure,
    plan_start,
    skipped_event_id,
    skipped_fire,
    workflow_refusal,
)
from tests.unit.rules_world import payload

WORKFLOW = Entity("W", 4, {"state": "ACTIVE", "datastore_id": "D", "engine_name": "no_op_engine", "tags": ["t"]})
TEMPLATES: list[tuple[str, dict[str, Any]]] = [("T0", {"name": "a0", "state": "TEMPLATE", "avg_runtime": "0:00:05", "completed_runs": 3}),
             ("T1", {"name": "a1", "state": "TEMPLATE", "tags": ["x"]})]


def created(appends: list[Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    return [(a.stream_id.split("-", 1)[1], payload(a.events[0])["data"]) for a in appends
            if a.stream_id.startswith(prefix)]


def test_a_missing_or_inactive_workflow_is_refused() -> None:
    assert workflow_refusal("W", None) == "workflow W does not exist"
    assert workflow_refusal("W", {"state": "INACTIVE"}) == "This workflow is not ACTIVE"
    assert workflow_refusal("W", {"state": "ACTIVE"}) is None


def test_a_start_is_refused_when_queued_and_running_instances_fill_the_concurrency() -> None:
    assert concurrency_refusal({"concurrency": 2}, 1) is None
    assert concurrency_refusal({"concurrency": 2}, 2) == "Max concurrency reached: 2"
    assert concurrency_refusal({}, 1) == "Max concurrency reached: 1"  # the default concurrency is 1


def test_the_datastore_must_be_active_or_a_template() -> None:
    assert datastore_failure("D", None) == "datastore D does not exist"
    assert datastore_failure("D", Entity("D", 1, {"state": "INACTIVE"})) == (
        "expected datastore D to be ACTIVE or TEMPLATE, not INACTIVE")
    assert datastore_failure("D", Entity("D", 1, {"state": "TEMPLATE"})) is None


def test_a_template_datastore_is_cloned_and_the_actions_cloned_onto_it_in_order() -> None:
    template = Entity("D", 1, {"state": "TEMPLATE", "name": "n", "engine_name": "e", "host": "h", "concurrency": 2})
    cause = uuid.uuid4()
    instance_id, appends = plan_start(WORKFLOW, Fire("manual", cause=cause), template, TEMPLATES, 42.0, "now",
                                      "s3://root")
    assert appends[0].stream_id == "workflow-W" and appends[0].expected_version == 4  # the concurrency guard
    [(clone_id, clone)] = created(appends, "datastore-")
    assert clone["state"] == "ACTIVE" and "host" not in clone and clone["workflow_datastore_id"] == "D"
    assert clone["s3_artifacts_path"] == f"s3://root/n/e/artifacts/{clone_id}"
    [(_, instance)] = created(appends, "workflow_instance-")
    assert instance["state"] == "QUEUED" and instance["datastore_id"] == clone_id
    actions = [data for _, data in created(appends, "action-")]
    assert [a["order_idx"] for a in actions] == [1.0, 2.0]  # a clone starts from 0, whatever the base
    assert [(a["first_in_workflow"], a["last_in_workflow"]) for a in actions] == [(True, False), (False, True)]
    assert all(a["state"] == "HAS_NEVER_RUN" and a["datastore_id"] == clone_id for a in actions)
    assert "avg_runtime" not in actions[0] and "completed_runs" not in actions[0]
    assert actions[1]["tags"][0] == "x" and actions[1]["tags"][1] == instance["tags"][-1]  # the run's tag
    assert plan_start(WORKFLOW, Fire("manual", cause=cause), template, TEMPLATES, 0, "now", "s3://root")[0] == \
        instance_id  # the same cause, the same ids: a repeat is a no-op


def test_a_shared_datastore_queues_the_new_actions_after_its_highest_order_idx() -> None:
    shared = Entity("D", 1, {"state": "ACTIVE"})
    _, appends = plan_start(WORKFLOW, Fire("manual"), shared, TEMPLATES, 7.0, "now", "s3://root")
    assert not created(appends, "datastore-")
    assert [a["order_idx"] for _, a in created(appends, "action-")] == [8.0, 9.0]


def test_an_unusable_datastore_or_no_actions_record_a_failed_instance() -> None:
    for datastore, templates, message in [
            (None, TEMPLATES, "datastore D does not exist"),
            (Entity("D", 1, {"state": "INACTIVE"}), TEMPLATES, "not INACTIVE"),
            (Entity("D", 1, {"state": "ACTIVE"}), [], "workflow W has no actions")]:
        _, appends = plan_start(WORKFLOW, Fire("manual"), datastore, templates, 0, "now", "s3://root")
        [(_, instance)] = created(appends, "workflow_instance-")
        assert instance["state"] == "FAILED" and message in instance["error_message"]
        assert instance["end_time"] == "now" and not created(appends, "action-")


def test_a_retry_fire_is_recorded_on_the_instance() -> None:
    _, appends = plan_start(WORKFLOW, Fire("retry", None, 2, "orchestrator"), Entity("D", 1, {"state": "ACTIVE"}),
                            TEMPLATES, 0, "now", "s3://root")
    [(_, instance)] = created(appends, "workflow_instance-")
    assert (instance["trigger_type"], instance["retry_num"], instance["user_id"]) == ("retry", 2, "orchestrator")


def test_a_refused_fire_is_recorded_once_per_fire_and_workflow() -> None:
    fired = uuid.uuid4()
    append = skipped_fire("T", "W", "Max concurrency reached: 1", fired)
    assert append.stream_id == "trigger-T"
    assert append.events[0].event_id == skipped_event_id(fired, "W")
    assert payload(append.events[0]) == {"note": {"workflow_id": "W", "reason": "Max concurrency reached: 1"}}
