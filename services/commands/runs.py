"""Starting workflow instances (reference §8.1): read the workflow, its QUEUED and RUNNING instances, its
datastore and template actions; decide with services/domain/run_start.py; append the trigger decision on the
workflow stream, the instance, its cloned datastore and its cloned actions in one atomic append.

The concurrency decision counts QUEUED and RUNNING instances in the inline read model and appends to the
workflow stream with the version read alongside; two racing triggers cannot both pass the same count.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from projections.reads import TABLES
from services.commands.context import Orchestration, json_field
from services.commands.retry import StillConflicting, retry_on_conflict
from services.domain import run_start
from services.domain.run_start import ACTIVE_INSTANCE_STATES, Fire, Started, skipped_event_id

__all__ = ["Fire", "Started", "active_instances", "record_skipped_fire", "skipped_event_id", "start_instance"]


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
    earlier = run_start.instance_id_for(workflow_id, fire)

    def attempt() -> Started:
        if earlier is not None and orch.reader.row("workflow_instance", earlier) is not None:
            return Started(earlier)  # this fire was handled before (a redelivery, or a racing replica won)
        row = orch.reader.row("workflow", workflow_id)
        refused = run_start.workflow_refusal(workflow_id, None if row is None else row.data)
        if row is not None and refused is None:
            refused = run_start.concurrency_refusal(row.data, active_instances(orch, workflow_id), fire)
        if row is None or refused is not None:
            return Started(None, refused)
        datastore_id = str(row.data.get("datastore_id"))
        datastore = orch.reader.row("datastore", datastore_id)
        usable = run_start.datastore_failure(datastore_id, datastore) is None
        templates = orch.template_actions(workflow_id) if usable else []
        shared = usable and templates and not run_start.clones_datastore(datastore)
        instance_id, appends = run_start.plan_start(
            row, fire, datastore, templates, max_order_idx(orch, datastore_id) if shared else 0.0, now_iso(),
            orch.s3_datastores_root)
        orch.store.append(*appends)
        return Started(instance_id)

    try:
        return retry_on_conflict(attempt, what=f"workflow {workflow_id}")
    except StillConflicting:
        return Started(None, f"workflow {workflow_id} is changing too fast")


def record_skipped_fire(orch: Orchestration, trigger_id: str, workflow_id: str, reason: str,
                        cause: uuid.UUID | None) -> None:
    """A fire that started nothing for a workflow is an event, not silence (design.md §6)."""
    orch.store.append(run_start.skipped_fire(trigger_id, workflow_id, reason, cause))
