"""State and concurrency at run start (reference §8.1): whether a workflow may start an instance now, or why
not; and what a start records in one atomic append: the trigger decision on the workflow's stream (guarded by
the version the concurrency was counted at), the instance, its cloned datastore and its cloned actions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from events.streams.action import ActionCreated
from events.streams.datastore import DatastoreCreated
from events.streams.trigger import TriggerFireSkipped
from events.streams.workflow import WorkflowTriggered
from events.streams.workflow_instance import WorkflowInstanceCreated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.domain.ids import derived_id, random_id
from services.domain.rows import Row

ACTIVE_INSTANCE_STATES = ("QUEUED", "RUNNING")  # what a workflow's concurrency counts


@dataclass(frozen=True)
class Fire:
    """Why an instance is being started."""

    trigger_type: str  # manual, retry, scheduled, workflow_completion, event, subscription_batch, super
    trigger_id: str | None = None
    retry_num: int = 0
    user_id: str = "anonymous"
    cause: uuid.UUID | None = None  # the event (or request) this fire answers: makes a repeat a no-op
    scheduled_time: str | None = None  # a scheduled trigger's fire: the time it was for (ISO 8601 UTC)
    overlap: str = "skip"  # a scheduled trigger's overlap policy: allow_all starts beyond the concurrency


@dataclass(frozen=True)
class Started:
    instance_id: str | None
    refused: str | None = None  # why nothing started (workflow not ACTIVE, concurrency reached)


def instance_id_for(workflow_id: str, fire: Fire) -> str | None:
    """The instance this fire starts, when the fire has a cause: a repeat finds it started already."""
    return derived_id(fire.cause, f"instance:{workflow_id}") if fire.cause is not None else None


def workflow_refusal(workflow_id: str, workflow: Mapping[str, Any] | None) -> str | None:
    """Why the workflow cannot start at all (it does not exist, or is not ACTIVE), or None."""
    if workflow is None:
        return f"workflow {workflow_id} does not exist"
    if workflow.get("state") != "ACTIVE":
        return "This workflow is not ACTIVE"
    return None


def concurrency_refusal(workflow: Mapping[str, Any], active_instances: int, fire: Fire | None = None) -> str | None:
    """Why one more instance may not start: QUEUED and RUNNING instances already fill its concurrency (unless the
    fire is a schedule's whose overlap policy is allow_all)."""
    concurrency = int(workflow.get("concurrency") or 1)
    if active_instances >= concurrency and (fire is None or fire.overlap != "allow_all"):
        return f"Max concurrency reached: {concurrency}"
    return None


def datastore_failure(datastore_id: str, datastore: Row | None) -> str | None:
    """Why the run cannot use its workflow's datastore (the instance is then created FAILED), or None: it must
    be ACTIVE (the run shares it) or a TEMPLATE (the run gets its own clone)."""
    if datastore is None:
        return f"datastore {datastore_id} does not exist"
    state = datastore.data.get("state")
    if state not in ("ACTIVE", "TEMPLATE"):
        return f"expected datastore {datastore_id} to be ACTIVE or TEMPLATE, not {state}"
    return None


def clones_datastore(datastore: Row | None) -> bool:
    return datastore is not None and datastore.data.get("state") == "TEMPLATE"


def plan_start(workflow: Row, fire: Fire, datastore: Row | None, templates: Sequence[tuple[str, Mapping[str, Any]]],
               order_base: float, now: str, s3_datastores_root: str) -> tuple[str, list[StreamAppend]]:
    """The append that starts one instance of ``workflow`` (already found startable): (instance id, appends).
    ``templates`` are the workflow's template actions in order (read only when ``datastore_failure`` is None);
    ``order_base`` is the highest order_idx on a shared datastore (0 for a clone), so the run's actions queue
    after what is there. Ids derive from the fire's cause, so a repeat appends the same ids (a no-op)."""
    workflow_id, data, cause = workflow.id, workflow.data, fire.cause
    instance_id = instance_id_for(workflow_id, fire) or random_id()
    meta = Metadata(actor=fire.user_id, causation_id=str(cause) if cause else None)
    event_id: Callable[[str], uuid.UUID] = (
        lambda tag: uuid.uuid5(cause, f"{workflow_id}:{tag}") if cause else uuid.uuid4())
    wf_uuid = uuid.uuid5(cause, workflow_id).hex if cause else uuid.uuid4().hex
    instance: dict[str, Any] = {
        "workflow_id": workflow_id, "engine_name": data.get("engine_name"), "state": "QUEUED",
        "trigger_type": fire.trigger_type, "trigger_id": fire.trigger_id, "queued_time": now,
        "retry_num": fire.retry_num, "tags": [*(data.get("tags") or []), wf_uuid], "user_id": fire.user_id,
        # which definition runs (issue 17): the workflow's stream version and the commit it was applied from
        "workflow_version": workflow.version, "definition_commit": data.get("definition_commit"),
        "datastore_id": data.get("datastore_id"),
    }
    if fire.scheduled_time is not None:
        instance["scheduled_time"] = fire.scheduled_time
    appends = [StreamAppend(f"workflow-{workflow_id}", workflow.version, [NewEvent(
        WorkflowTriggered({"instance_id": instance_id, "trigger_type": fire.trigger_type,
                           "trigger_id": fire.trigger_id, "retry_num": fire.retry_num}), meta, event_id("triggered"))])]
    extra: list[StreamAppend] = []
    datastore_id = str(data.get("datastore_id"))
    failure = datastore_failure(datastore_id, datastore)
    if datastore is not None and clones_datastore(datastore):
        datastore_id = derived_id(cause, f"datastore:{workflow_id}") if cause else random_id()
        clone = clone_datastore(datastore, datastore_id, workflow_id, instance_id, fire.user_id, s3_datastores_root)
        extra.append(StreamAppend(f"datastore-{datastore_id}", ExpectedVersion.NO_STREAM,
                                  [NewEvent(DatastoreCreated(clone), meta, event_id("datastore"))]))
    instance["datastore_id"] = datastore_id
    if failure is None:
        if not templates:
            failure = f"workflow {workflow_id} has no actions"
        else:
            base = 0.0 if extra else order_base
            for index, (template_id, template) in enumerate(templates):
                action_id = derived_id(cause, f"action:{workflow_id}:{index}") if cause else random_id()
                action = clone_action(template, template_id, datastore_id, workflow_id, instance_id, wf_uuid,
                                      fire.user_id, base + index + 1, index == 0, index == len(templates) - 1)
                extra.append(StreamAppend(f"action-{action_id}", ExpectedVersion.NO_STREAM,
                                          [NewEvent(ActionCreated(action), meta, event_id(f"action:{index}"))]))
    if failure is not None:
        instance.update(state="FAILED", error_message=failure, end_time=now)
    appends.append(StreamAppend(f"workflow_instance-{instance_id}", ExpectedVersion.NO_STREAM,
                                [NewEvent(WorkflowInstanceCreated(instance), meta, event_id("instance"))]))
    return instance_id, [*appends, *extra]


def clone_datastore(template: Row, datastore_id: str, workflow_id: str, instance_id: str, user_id: str,
                    s3_datastores_root: str) -> dict[str, Any]:
    """A run's own datastore, cloned from its workflow's TEMPLATE datastore (without its connection)."""
    data = template.data
    clone = {k: v for k, v in data.items() if k not in ("host", "port", "connection_url", "extra_data")}
    base = f"{s3_datastores_root}/{data.get('name')}/{data.get('engine_name')}"
    clone.update(state="ACTIVE", workflow_datastore_id=template.id, workflow_id=workflow_id,
                 workflow_instance_id=instance_id, user_id=user_id, extra_data={},
                 s3_artifacts_path=f"{base}/artifacts/{datastore_id}", s3_logs_path=f"{base}/logs/{datastore_id}")
    return clone


def clone_action(template: Mapping[str, Any], template_id: str, datastore_id: str, workflow_id: str,
                 instance_id: str, wf_uuid: str, user_id: str, order_idx: float, first: bool,
                 last: bool) -> dict[str, Any]:
    """A run's action, cloned from its template: HAS_NEVER_RUN, with the run's ids and the run's tag."""
    reset = {"queued_time", "start_time", "end_time", "error_message", "progress", "ecs_task_arn",
             "avg_runtime", "completed_runs"}
    data = {k: v for k, v in template.items() if k not in reset}
    data.update(state="HAS_NEVER_RUN", workflow_action_id=template_id, datastore_id=datastore_id,
                workflow_id=workflow_id, workflow_instance_id=instance_id, order_idx=order_idx,
                tags=[*(template.get("tags") or []), wf_uuid], user_id=user_id,
                first_in_workflow=first, last_in_workflow=last)
    return data


def skipped_event_id(fired_id: uuid.UUID, workflow_id: str) -> uuid.UUID:
    return uuid.uuid5(fired_id, f"skipped:{workflow_id}")


def skipped_fire(trigger_id: str, workflow_id: str, reason: str, cause: uuid.UUID | None) -> StreamAppend:
    """A fire that started nothing for a workflow is an event, not silence (design.md §6)."""
    event_id = skipped_event_id(cause, workflow_id) if cause else uuid.uuid4()
    return StreamAppend(f"trigger-{trigger_id}", ExpectedVersion.ANY, [NewEvent(
        TriggerFireSkipped({"workflow_id": workflow_id, "reason": reason}), Metadata(actor="orchestrator"),
        event_id)])
