"""Starting workflow instances (reference §8.1): one atomic append holds the trigger decision on the
workflow stream, the instance, its cloned datastore and its cloned actions.

The concurrency decision counts QUEUED and RUNNING instances in the inline read model and appends to the
workflow stream with the version read alongside; two racing triggers cannot both pass the same count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from events.errors import ConcurrencyError
from events.streams.action import ActionCreated
from events.streams.datastore import DatastoreCreated
from events.streams.trigger import TriggerFireSkipped
from events.streams.workflow import WorkflowTriggered
from events.streams.workflow_instance import WorkflowInstanceCreated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from projections.reads import TABLES
from services.commands.context import Orchestration, derived_id, json_field
from services.domain.ids import random_id

ACTIVE_INSTANCE_STATES = ("QUEUED", "RUNNING")
RETRIES = 10


@dataclass(frozen=True)
class Fire:
    """Why an instance is being started."""

    trigger_type: str  # manual, retry, scheduled, workflow_completion, event, subscription_batch, super
    trigger_id: str | None = None
    retry_num: int = 0
    user_id: str = "anonymous"
    cause: uuid.UUID | None = None  # the event (or request) this fire answers: makes a repeat a no-op


@dataclass(frozen=True)
class Started:
    instance_id: str | None
    refused: str | None = None  # why nothing started (workflow not ACTIVE, concurrency reached)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def active_instances(orch: Orchestration, workflow_id: str) -> int:
    table = TABLES["workflow_instance"]
    with orch.store.engine.connect() as conn:
        return int(conn.execute(
            sa.select(sa.func.count()).select_from(table).where(
                json_field(table, "workflow_id") == workflow_id, table.c.state.in_(ACTIVE_INSTANCE_STATES))
        ).scalar() or 0)


def max_order_idx(orch: Orchestration, datastore_id: str) -> float:
    table = TABLES["action"]
    rows = orch.actions_where(json_field(table, "datastore_id") == datastore_id)
    return max([float(r["order_idx"] or 0) for r in rows] or [0.0])


def start_instance(orch: Orchestration, workflow_id: str, fire: Fire) -> Started:
    """run_triggered_workflow: start one instance of a workflow, or say why not."""
    earlier = derived_id(fire.cause, f"instance:{workflow_id}") if fire.cause is not None else None
    for attempt in range(RETRIES):
        if earlier is not None and orch.reader.row("workflow_instance", earlier) is not None:
            return Started(earlier)  # this fire was handled before (a redelivery, or a racing replica won)
        row = orch.reader.row("workflow", workflow_id)
        if row is None:
            return Started(None, f"workflow {workflow_id} does not exist")
        workflow = row.data
        if workflow.get("state") != "ACTIVE":
            return Started(None, "This workflow is not ACTIVE")
        concurrency = int(workflow.get("concurrency") or 1)
        if active_instances(orch, workflow_id) >= concurrency:
            return Started(None, f"Max concurrency reached: {concurrency}")
        try:
            instance_id = _append_instance(orch, workflow_id, row.version, workflow, fire, attempt)
        except ConcurrencyError:
            continue
        return Started(instance_id)
    return Started(None, f"workflow {workflow_id} is changing too fast")


def _append_instance(orch: Orchestration, workflow_id: str, version: int, workflow: dict[str, Any], fire: Fire,
                     attempt: int) -> str:
    ids = derived_id(fire.cause, f"instance:{workflow_id}") if fire.cause else None
    instance_id = ids or random_id()
    meta = Metadata(actor=fire.user_id, causation_id=str(fire.cause) if fire.cause else None)
    event_id = (lambda tag: uuid.uuid5(fire.cause, f"{workflow_id}:{tag}") if fire.cause else uuid.uuid4())
    wf_uuid = uuid.uuid5(fire.cause, workflow_id).hex if fire.cause else uuid.uuid4().hex
    now = now_iso()
    instance: dict[str, Any] = {
        "workflow_id": workflow_id, "engine_name": workflow.get("engine_name"), "state": "QUEUED",
        "trigger_type": fire.trigger_type, "trigger_id": fire.trigger_id, "queued_time": now,
        "retry_num": fire.retry_num, "tags": [*(workflow.get("tags") or []), wf_uuid], "user_id": fire.user_id,
        "datastore_id": workflow.get("datastore_id"),
    }
    appends = [StreamAppend(f"workflow-{workflow_id}", version, [NewEvent(
        WorkflowTriggered({"instance_id": instance_id, "trigger_type": fire.trigger_type,
                           "trigger_id": fire.trigger_id, "retry_num": fire.retry_num}), meta, event_id("triggered"))])]
    extra: list[StreamAppend] = []
    failure = None
    datastore_row = orch.reader.row("datastore", str(workflow.get("datastore_id")))
    datastore_id = str(workflow.get("datastore_id"))
    if datastore_row is None:
        failure = f"datastore {datastore_id} does not exist"
    elif datastore_row.data.get("state") == "TEMPLATE":
        datastore_id = derived_id(fire.cause, f"datastore:{workflow_id}") if fire.cause else random_id()
        clone = _clone_datastore(orch, datastore_row.data, datastore_id, workflow_id, instance_id, fire.user_id,
                                 datastore_row.id)
        extra.append(StreamAppend(f"datastore-{datastore_id}", ExpectedVersion.NO_STREAM,
                                  [NewEvent(DatastoreCreated(clone), meta, event_id("datastore"))]))
    elif datastore_row.data.get("state") != "ACTIVE":
        failure = f"expected datastore {datastore_id} to be ACTIVE or TEMPLATE, not {datastore_row.data.get('state')}"
    instance["datastore_id"] = datastore_id
    if failure is None:
        templates = orch.template_actions(workflow_id)
        if not templates:
            failure = f"workflow {workflow_id} has no actions"
        else:
            base = 0.0 if extra else max_order_idx(orch, datastore_id)
            for index, (template_id, template) in enumerate(templates):
                action_id = derived_id(fire.cause, f"action:{workflow_id}:{index}") if fire.cause else random_id()
                data = _clone_action(template, template_id, datastore_id, workflow_id, instance_id, wf_uuid,
                                     fire.user_id, base + index + 1, index == 0, index == len(templates) - 1)
                extra.append(StreamAppend(f"action-{action_id}", ExpectedVersion.NO_STREAM,
                                          [NewEvent(ActionCreated(data), meta, event_id(f"action:{index}"))]))
    if failure is not None:
        instance.update(state="FAILED", error_message=failure, end_time=now)
    appends.append(StreamAppend(f"workflow_instance-{instance_id}", ExpectedVersion.NO_STREAM,
                                [NewEvent(WorkflowInstanceCreated(instance), meta, event_id("instance"))]))
    orch.store.append(*appends, *extra)
    return instance_id


def _clone_datastore(orch: Orchestration, template: dict[str, Any], datastore_id: str, workflow_id: str,
                     instance_id: str, user_id: str, template_id: str) -> dict[str, Any]:
    clone = {k: v for k, v in template.items() if k not in ("host", "port", "connection_url", "extra_data")}
    root = orch.s3_datastores_root
    base = f"{root}/{template.get('name')}/{template.get('engine_name')}"
    clone.update(state="ACTIVE", workflow_datastore_id=template_id, workflow_id=workflow_id,
                 workflow_instance_id=instance_id, user_id=user_id, extra_data={},
                 s3_artifacts_path=f"{base}/artifacts/{datastore_id}", s3_logs_path=f"{base}/logs/{datastore_id}")
    return clone


def _clone_action(template: dict[str, Any], template_id: str, datastore_id: str, workflow_id: str,
                  instance_id: str, wf_uuid: str, user_id: str, order_idx: float, first: bool,
                  last: bool) -> dict[str, Any]:
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


def record_skipped_fire(orch: Orchestration, trigger_id: str, workflow_id: str, reason: str,
                        cause: uuid.UUID | None) -> None:
    """A fire that started nothing for a workflow is an event, not silence (design.md §6)."""
    event_id = skipped_event_id(cause, workflow_id) if cause else uuid.uuid4()
    orch.store.append(StreamAppend(f"trigger-{trigger_id}", ExpectedVersion.ANY, [NewEvent(
        TriggerFireSkipped({"workflow_id": workflow_id, "reason": reason}), Metadata(actor="orchestrator"),
        event_id)]))
