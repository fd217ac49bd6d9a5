"""The completion plan (services/domain/completion.py): on_failure, retries, SKIPPED, runtime averages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from events.types import Metadata
from services.domain.completion import (
    CompletionFacts,
    datastore_to_deactivate,
    format_timedelta,
    parse_timedelta,
    plan_completion,
    template_stats,
    workflow_average,
)
from services.domain.rows import Entity
from tests.unit.rules_world import payload

END = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)
META = Metadata(actor="orchestrator")


def action(on_failure: str | None = None, last: bool = False, **data: Any) -> Entity:
    fields = {"state": "FINISHING", "workflow_instance_id": "I", "workflow_id": "W", "datastore_id": "D",
              "workflow_action_id": "T", "start_time": "2026-01-01T12:00:00+00:00", "last_in_workflow": last}
    if on_failure:
        fields["on_failure"] = on_failure
    return Entity("A", 5, {**fields, **data})


def facts(state: str, act: Entity, *, retries: int = 0, retry_num: int = 0, workflow_on_failure: str | None = None,
          error: str | None = None, **more: Any) -> CompletionFacts:
    workflow = {"state": "ACTIVE", "retries_on_failure": retries}
    if workflow_on_failure:
        workflow["on_failure"] = workflow_on_failure
    return CompletionFacts(act, state, error, END, Entity("T", 2, {"completed_runs": 1, "avg_runtime": "0:00:20"}),
                           Entity("I", 3, {"state": "RUNNING", "retry_num": retry_num, "datastore_id": "D"}),
                           Entity("W", 9, workflow), **more)


def plan(f: CompletionFacts) -> tuple[list[tuple[str, str]], Any]:
    result = plan_completion(f, META, uuid.uuid4(), "complete:A:0")
    return [(a.stream_id, a.events[0].event.type_name) for a in result.appends], result


WAITING = [{"id": "B", "_version": 1, "state": "HAS_NEVER_RUN"}, {"id": "C", "_version": 1, "state": "HAS_NEVER_RUN"}]
ACTIVE_DATASTORE = Entity("D", 1, {"state": "ACTIVE"})


def test_runtimes_read_and_write_in_the_original_format() -> None:
    for text in ("0:00:05", "1:02:03.500000", "2 days, 0:00:01", "1 day, 3:00:00"):
        assert format_timedelta(parse_timedelta(text)) == text
    assert parse_timedelta(None) == parse_timedelta("") == timedelta(0)


def test_a_completed_run_updates_the_template_mean_and_the_workflow_sums_its_templates() -> None:
    assert template_stats({"completed_runs": 1, "avg_runtime": "0:00:20"}, action().data, END) == {
        "avg_runtime": "0:00:15", "completed_runs": 2}  # (20 + 10) / 2
    assert template_stats({}, action().data, END) == {"avg_runtime": "0:00:10", "completed_runs": 1}
    assert template_stats({}, action(start_time=None).data, END)["avg_runtime"] == "0:00:00"  # never started
    assert workflow_average(["0:00:10", None, "0:01:00"]) == "0:01:10"


def test_a_completed_action_in_the_middle_of_a_run_records_its_end_and_the_template_stats_only() -> None:
    streams, result = plan(facts("COMPLETED", action()))
    assert streams == [("action-A", "ActionCompleted"), ("action-T", "ActionStatsUpdated")]
    assert result.appends[0].expected_version == 5 and result.retry is None
    assert payload(result.appends[0].events[0])["changes"] == {
        "state": "COMPLETED", "end_time": END.isoformat(), "progress": 1}


def test_the_last_completed_action_completes_the_run_and_updates_the_workflow_average() -> None:
    # As read before the completion: T's own average (0:00:20) becomes 0:00:15 in this append, and counts so.
    streams, result = plan(facts("COMPLETED", action(last=True), template_averages={"T": "0:00:20", "U": "0:00:05"}))
    assert streams[2:] == [("workflow_instance-I", "WorkflowInstanceCompleted"), ("workflow-W", "WorkflowStatsUpdated")]
    assert payload(result.appends[3].events[0]) == {"changes": {"avg_runtime": "0:00:20"}}


def test_a_failure_fails_the_run_skips_the_rest_and_deactivates_workflow_and_datastore() -> None:
    act = action()
    assert datastore_to_deactivate(act.data, "FAILED", facts("FAILED", act).instance, facts("FAILED", act).workflow) == "D"
    streams, result = plan(facts("FAILED", act, error="boom", waiting=WAITING, datastore=ACTIVE_DATASTORE))
    assert streams == [("action-A", "ActionCompleted"), ("workflow_instance-I", "WorkflowInstanceFailed"),
                       ("action-B", "ActionSkipped"), ("action-C", "ActionSkipped"),
                       ("workflow-W", "WorkflowDeactivated"), ("datastore-D", "DatastoreDeactivated")]
    assert payload(result.appends[1].events[0])["changes"]["error_message"] == "action A failed: boom"
    assert payload(result.appends[2].events[0])["changes"] == {
        "state": "SKIPPED", "error_message": "A prior action (id=A) in this workflow instance failed"}


def test_a_workflow_whose_on_failure_is_not_deactivate_keeps_its_datastore_active() -> None:
    f = facts("FAILED", action(), workflow_on_failure="CONTINUE", datastore=ACTIVE_DATASTORE)
    assert datastore_to_deactivate(f.action.data, "FAILED", f.instance, f.workflow) is None
    streams, _ = plan(f)
    assert ("workflow-W", "WorkflowDeactivated") in streams and ("datastore-D", "DatastoreDeactivated") not in streams


def test_a_failure_with_retries_left_asks_for_a_retry_run_and_deactivates_nothing() -> None:
    streams, result = plan(facts("FAILED", action(), retries=2, retry_num=1, waiting=WAITING))
    assert result.retry == ("W", 2)
    assert ("workflow-W", "WorkflowDeactivated") not in streams and ("action-B", "ActionSkipped") in streams
    _, spent = plan(facts("FAILED", action(), retries=2, retry_num=2, datastore=ACTIVE_DATASTORE))
    assert spent.retry is None and any(a.stream_id == "workflow-W" for a in spent.appends)


def test_halt_fails_the_run_and_skips_the_rest_but_keeps_the_workflow_and_datastore_active() -> None:
    f = facts("FAILED", action("HALT"), waiting=WAITING)
    assert datastore_to_deactivate(f.action.data, "FAILED", f.instance, f.workflow) is None
    streams, _ = plan(f)
    assert streams == [("action-A", "ActionCompleted"), ("workflow_instance-I", "WorkflowInstanceFailed"),
                       ("action-B", "ActionSkipped"), ("action-C", "ActionSkipped")]
    assert plan(facts("FAILED", action("HALT"), retries=1))[1].retry == ("W", 1)  # HALT retries like DEACTIVATE


def test_continue_goes_on_and_a_failed_last_action_still_completes_the_run() -> None:
    streams, _ = plan(facts("FAILED", action("CONTINUE"), waiting=WAITING))
    assert streams == [("action-A", "ActionCompleted")]
    streams, _ = plan(facts("FAILED", action("CONTINUE", last=True)))
    assert ("workflow_instance-I", "WorkflowInstanceCompleted") in streams


def test_a_run_already_finished_is_not_touched_again() -> None:
    f = facts("FAILED", action(), waiting=WAITING)
    done = CompletionFacts(f.action, "FAILED", None, END, None, Entity("I", 4, {"state": "FAILED"}), f.workflow,
                           WAITING)
    assert plan(done)[0] == [("action-A", "ActionCompleted")]


def test_a_failed_ad_hoc_action_deactivates_its_datastore_unless_it_says_otherwise() -> None:
    adhoc = Entity("A", 2, {"state": "FINISHING", "datastore_id": "D"})
    assert datastore_to_deactivate(adhoc.data, "FAILED", None, None) == "D"
    streams, _ = plan(CompletionFacts(adhoc, "FAILED", "x", END, datastore=ACTIVE_DATASTORE))
    assert streams == [("action-A", "ActionCompleted"), ("datastore-D", "DatastoreDeactivated")]
    inactive = Entity("D", 1, {"state": "INACTIVE"})
    assert plan(CompletionFacts(adhoc, "FAILED", "x", END, datastore=inactive))[0] == [("action-A", "ActionCompleted")]
    keeps = Entity("A", 2, {"state": "FINISHING", "datastore_id": "D", "on_failure": "CONTINUE"})
    assert datastore_to_deactivate(keeps.data, "FAILED", None, None) is None


def test_the_completion_event_id_derives_from_its_cause_and_the_settlement_follows_it() -> None:
    cause = uuid.uuid4()
    settlement = plan_completion(facts("COMPLETED", action()), META, cause, "t").appends[0]
    first = plan_completion(facts("COMPLETED", action()), META, cause, "complete:A:0", settlement)
    again = plan_completion(facts("COMPLETED", action()), META, cause, "complete:A:0")
    assert first.appends[0].events[0].event_id == again.appends[0].events[0].event_id
    assert first.appends[1] is settlement
