"""The completion plan (reference §8.4, design.md §6): what finishing an action appends. on_failure DEACTIVATE
fails the instance, skips the rest (SKIPPED) and, once the workflow's retries are spent, deactivates the
workflow (and its datastore when the workflow says so); HALT fails and skips but deactivates nothing; CONTINUE
goes on. A completed run updates the template's and the workflow's runtime averages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from events.streams.action import ActionCompleted, ActionSkipped, ActionStatsUpdated
from events.streams.datastore import DatastoreDeactivated
from events.streams.workflow import WorkflowDeactivated, WorkflowStatsUpdated
from events.streams.workflow_instance import WorkflowInstanceCompleted, WorkflowInstanceFailed
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.domain import run_control
from services.domain.ids import derived_event_id
from services.domain.rows import Row

DONE = ("COMPLETED", "FAILED", "SKIPPED")
LIVE_INSTANCE = ("QUEUED", "RUNNING")

Action = Mapping[str, Any]


# ---------------------------------------------------------------------------------------------- runtimes
def format_timedelta(value: timedelta) -> str:
    return str(value)  # the original's format: "H:MM:SS[.ffffff]" or "N days, H:MM:SS"


def parse_timedelta(text: str | None) -> timedelta:
    if not text:
        return timedelta(0)
    days = 0
    if "day" in text:
        head, _, text = text.partition(", ")
        days = int(head.split()[0])
    hours, minutes, seconds = text.split(":")
    return timedelta(days=days, hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def runtime(action: Action, end: datetime) -> timedelta:
    """How long the action ran (from its start_time); zero when it never started."""
    try:
        return end - datetime.fromisoformat(action["start_time"])
    except (KeyError, TypeError, ValueError):
        return timedelta(0)


def template_stats(template: Mapping[str, Any], action: Action, end: datetime) -> dict[str, Any]:
    """The template's running mean of its completed runs' runtimes, with this run added."""
    runs = int(template.get("completed_runs") or 0)
    mean = parse_timedelta(template.get("avg_runtime"))
    return {"avg_runtime": format_timedelta((mean * runs + runtime(action, end)) / (runs + 1)),
            "completed_runs": runs + 1}


def workflow_average(template_averages: Iterable[str | None]) -> str:
    """A workflow's average runtime: the sum of its templates' averages."""
    return format_timedelta(sum((parse_timedelta(t) for t in template_averages), timedelta(0)))


def averages_with(template_averages: Mapping[str, str | None], template_id: str | None,
                  updated: str | None) -> list[str | None]:
    """The templates' averages with one template's new average (the completion's own update, in the same
    append as the workflow's, so the averages read before it lack it)."""
    return [updated if tid == template_id and updated is not None else avg for tid, avg in template_averages.items()]


# ------------------------------------------------------------------------------------------- predicates
def on_failure(action: Action) -> str:
    return str(action.get("on_failure") or "DEACTIVATE")


def fails_instance(action: Action, state: str) -> bool:
    """A failure that fails the action's instance and skips the rest (DEACTIVATE and HALT, not CONTINUE)."""
    return state == "FAILED" and on_failure(action) in ("DEACTIVATE", "HALT")


def finishes_instance(action: Action, state: str) -> bool:
    """The last action of a run completes it, also when it failed with CONTINUE."""
    return bool(action.get("last_in_workflow")) and (state == "COMPLETED" or on_failure(action) == "CONTINUE")


def retry_number(instance: Mapping[str, Any], workflow: Mapping[str, Any]) -> int | None:
    """The retry_num of the retry a failed run gets, or None once the workflow's retries are spent."""
    retry_num = int(instance.get("retry_num") or 0)
    return retry_num + 1 if retry_num < int(workflow.get("retries_on_failure") or 0) else None


def datastore_to_deactivate(action: Action, state: str, instance: Row | None, workflow: Row | None) -> str | None:
    """The datastore a failure deactivates, if any: an ad-hoc action's own (DEACTIVATE); a run's, once the
    workflow's retries are spent and both the action and the workflow say DEACTIVATE."""
    if not action.get("workflow_instance_id"):
        return str(action.get("datastore_id")) if state == "FAILED" and on_failure(action) == "DEACTIVATE" else None
    if instance is None or instance.data.get("state") not in LIVE_INSTANCE or not fails_instance(action, state):
        return None
    if workflow is None or retry_number(instance.data, workflow.data) is not None:
        return None
    if on_failure(action) != "DEACTIVATE" or (workflow.data.get("on_failure") or "DEACTIVATE") != "DEACTIVATE":
        return None
    return str(instance.data.get("datastore_id"))


# ------------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class CompletionFacts:
    """What a completion is decided on, read from the read models just before."""

    action: Row
    state: str  # COMPLETED or FAILED
    error_message: str | None
    end: datetime
    template: Row | None = None  # the action's template, when it completed
    instance: Row | None = None
    workflow: Row | None = None
    waiting: Sequence[Action] = ()  # the instance's HAS_NEVER_RUN actions, when the failure fails it
    # The workflow's templates' avg_runtime by template id, as read before the completion, when the run finishes.
    template_averages: Mapping[str, str | None] = field(default_factory=dict)
    datastore: Row | None = None  # the one ``datastore_to_deactivate`` names, if any
    retry_id: str | None = None  # the id the action's next attempt gets, if its retries are not spent
    retry_draw: float = 1.0  # in [0, 1): the next attempt's jitter


@dataclass(frozen=True)
class CompletionPlan:
    appends: list[StreamAppend] = field(default_factory=list)
    retry: tuple[str, int] | None = None  # (workflow id, retry_num) of the retry run to start afterwards
    attempt: tuple[str, datetime] | None = None  # (id, not_before) of the action's next attempt, if it has one


def skipped_message(failed_id: str) -> str:
    return f"A prior action (id={failed_id}) in this workflow instance failed"


def plan_completion(facts: CompletionFacts, meta: Metadata, cause: uuid.UUID | None, tag: str,
                    settlement: StreamAppend | None = None) -> CompletionPlan:
    """Every append that finishing ``facts.action`` makes, in one atomic append, and the retry to start after
    it. ``tag`` derives the completion's event id from ``cause``; ``settlement`` is the consumed
    subscription's part (a consume_subscription action), placed right after the completion."""
    action, state, end = facts.action, facts.state, facts.end
    changes: dict[str, Any] = {"state": state, "end_time": end.isoformat()}
    if state == "COMPLETED":
        changes["progress"] = 1
    if facts.error_message is not None:
        changes["error_message"] = facts.error_message
    appends = [StreamAppend(f"action-{action.id}", action.version, [NewEvent(ActionCompleted(changes), meta,
                                                                             derived_event_id(cause, tag))])]
    if settlement is not None:
        appends.append(settlement)
    if facts.retry_id is not None and run_control.retries_left(action.data, state):
        # Another attempt instead of the failure rules: the instance goes on, its workflow busy until then.
        attempt, due = run_control.next_attempt(action, facts.retry_id, end, facts.retry_draw, meta,
                                                derived_event_id(cause, f"{tag}:attempt"))
        return CompletionPlan([*appends, attempt], None, (facts.retry_id, due))
    updated_average: str | None = None  # this completion's template's new average, counted in the workflow's
    if state == "COMPLETED" and action.data.get("workflow_action_id") and facts.template is not None:
        stats = template_stats(facts.template.data, action.data, end)
        updated_average = stats["avg_runtime"]
        appends.append(StreamAppend(f"action-{facts.template.id}", facts.template.version, [NewEvent(
            ActionStatsUpdated(stats), meta)]))
    retry: tuple[str, int] | None = None
    instance, workflow = facts.instance, facts.workflow
    if action.data.get("workflow_instance_id"):
        if instance is not None and instance.data.get("state") in LIVE_INSTANCE:
            if fails_instance(action.data, state):
                reason = facts.error_message or action.data.get("error_message") or "an action failed"
                appends.append(StreamAppend(f"workflow_instance-{instance.id}", instance.version, [NewEvent(
                    WorkflowInstanceFailed({"state": "FAILED", "end_time": end.isoformat(),
                                            "error_message": f"action {action.id} failed: {reason}"}), meta)]))
                appends += [StreamAppend(f"action-{a['id']}", a["_version"], [NewEvent(
                    ActionSkipped({"state": "SKIPPED", "error_message": skipped_message(action.id)}), meta)])
                    for a in facts.waiting if a.get("state") == "HAS_NEVER_RUN"]
                if workflow is not None:
                    retry_num = retry_number(instance.data, workflow.data)
                    if retry_num is not None:
                        retry = (workflow.id, retry_num)
                    elif on_failure(action.data) == "DEACTIVATE":
                        if workflow.data.get("state") == "ACTIVE":
                            appends.append(StreamAppend(f"workflow-{workflow.id}", ExpectedVersion.ANY, [NewEvent(
                                WorkflowDeactivated({"state": "INACTIVE"}), meta)]))
                        appends += _deactivate(facts, meta)
            elif finishes_instance(action.data, state):
                appends.append(StreamAppend(f"workflow_instance-{instance.id}", instance.version, [NewEvent(
                    WorkflowInstanceCompleted({"state": "COMPLETED", "end_time": end.isoformat()}), meta)]))
                if workflow is not None:
                    appends.append(StreamAppend(f"workflow-{workflow.id}", ExpectedVersion.ANY, [NewEvent(
                        WorkflowStatsUpdated({"avg_runtime": workflow_average(averages_with(
                            facts.template_averages, facts.template.id if facts.template else None,
                            updated_average))}), meta)]))
    elif state == "FAILED" and on_failure(action.data) == "DEACTIVATE":
        appends += _deactivate(facts, meta)
    return CompletionPlan(appends, retry)


def _deactivate(facts: CompletionFacts, meta: Metadata) -> list[StreamAppend]:
    datastore = facts.datastore
    if datastore is None or datastore.data.get("state") != "ACTIVE":
        return []
    if datastore.id != datastore_to_deactivate(facts.action.data, facts.state, facts.instance, facts.workflow):
        return []
    return [StreamAppend(f"datastore-{datastore.id}", ExpectedVersion.ANY, [NewEvent(
        DatastoreDeactivated({"state": "INACTIVE"}), meta)])]
