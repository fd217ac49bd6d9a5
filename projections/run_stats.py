"""Run statistics for ``/metrics`` (issue 15): runs by workflow and outcome, and the histograms of action
durations, queue waits and trigger -> first action latency, folded from the log by an async projection.

Why a projection and not counters in the processes that see these things happen: under gunicorn and in
production the API that answers the scrape is not the process that launched or completed anything (the
orchestrator and launcher are other processes, on other hosts, restarted at will), and a worker-local counter
would count a redelivered or replayed event twice. Folded from the log, every API worker answers the same
numbers, they survive restarts, and ``dart projections rebuild stats.runs`` recomputes them exactly. A scrape
reads a few small rows (one per workflow and outcome, one per histogram series), whatever the log's size."""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from events.types import RecordedEvent
from projections.base import Projection

# Upper bounds (seconds) of the histograms' buckets; a last, unbounded bucket follows.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
WAIT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
HISTOGRAMS = {
    "action_duration": DURATION_BUCKETS,  # engine, action_type: checked out -> ended
    "action_queue_wait": WAIT_BUCKETS,  # engine, action_type: queued -> checked out (running)
    "trigger_to_first_action": WAIT_BUCKETS,  # workflow_id: the run queued (its trigger) -> first action running
}
OUTCOMES = ("started", "completed", "failed", "cancelled")

HANDLED = frozenset({
    "ActionCreated", "ActionQueued", "ActionCheckedOut", "ActionCompleted", "ActionCancelled", "ActionSkipped",
    "ActionDeleted", "WorkflowInstanceCreated", "WorkflowInstanceStarted", "WorkflowInstanceCompleted",
    "WorkflowInstanceFailed", "WorkflowInstanceCancelled", "WorkflowInstanceDeleted",
})
ACTION_ENDS = ("ActionCompleted", "ActionCancelled", "ActionSkipped", "ActionDeleted")
INSTANCE_ENDS = {"WorkflowInstanceCompleted": "completed", "WorkflowInstanceFailed": "failed",
                 "WorkflowInstanceCancelled": "cancelled", "WorkflowInstanceDeleted": None}


def _seconds(start: Any, end: Any) -> float | None:
    try:
        return max((datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _text(value: Any, size: int) -> str | None:
    """A string field as its column holds it (None for anything else: the log is not this code's to police)."""
    return value[:size] if isinstance(value, str) else None


def labels_key(**labels: Any) -> str:
    return json.dumps({k: "" if v is None else str(v) for k, v in labels.items()}, sort_keys=True,
                      separators=(",", ":"))


class RunStats(Projection):
    name = "stats.runs"
    mode = "async"

    def define_tables(self, metadata: sa.MetaData, suffix: str) -> dict[str, sa.Table]:
        return {
            "stats_run_outcomes": sa.Table(
                f"stats_run_outcomes{suffix}", metadata,
                sa.Column("workflow_id", sa.String(64), primary_key=True),
                sa.Column("outcome", sa.String(16), primary_key=True),
                sa.Column("count", sa.BigInteger(), nullable=False),
            ),
            "stats_histograms": sa.Table(
                f"stats_histograms{suffix}", metadata,
                sa.Column("metric", sa.String(60), primary_key=True),
                sa.Column("labels", sa.String(500), primary_key=True),  # labels_key(): sorted JSON
                sa.Column("buckets", sa.Text(), nullable=False),  # JSON list: count per bucket (not cumulative)
                sa.Column("sum", sa.Float(), nullable=False),
                sa.Column("count", sa.BigInteger(), nullable=False),
            ),
            # What the histograms need of live actions and instances, until they end (then the row goes).
            "stats_open_actions": sa.Table(
                f"stats_open_actions{suffix}", metadata,
                sa.Column("action_id", sa.String(64), primary_key=True),
                sa.Column("engine", sa.String(200), nullable=True),
                sa.Column("action_type", sa.String(200), nullable=True),
                sa.Column("queued_time", sa.String(40), nullable=True),
                sa.Column("start_time", sa.String(40), nullable=True),
            ),
            "stats_open_instances": sa.Table(
                f"stats_open_instances{suffix}", metadata,
                sa.Column("instance_id", sa.String(64), primary_key=True),
                sa.Column("workflow_id", sa.String(64), nullable=False),
                sa.Column("queued_time", sa.String(40), nullable=True),
                sa.Column("started", sa.Boolean(), nullable=False),
            ),
        }

    def handles(self, type_name: str) -> bool:
        return type_name in HANDLED

    def apply(self, conn: sa.Connection, events: Sequence[RecordedEvent]) -> None:
        batch = _Batch(self.tables, conn)
        for event in events:
            if event.category == "action":
                self._action(batch, event)
            elif event.category == "workflow_instance":
                self._instance(batch, event)
        batch.flush()

    # ------------------------------------------------------------------------------------------ actions
    def _action(self, batch: _Batch, event: RecordedEvent) -> None:
        action_id = event.entity_id
        if event.type == "ActionCreated":
            data = event.data.get("data") or {}
            if data.get("state") == "TEMPLATE":
                return
            batch.actions[action_id] = {"action_id": action_id, "engine": _text(data.get("engine_name"), 200),
                                        "action_type": _text(data.get("action_type_name"), 200),
                                        "queued_time": None, "start_time": None}
            return
        row = batch.action(action_id)
        if row is None:
            return
        changes = event.data.get("changes") or {}
        if event.type == "ActionQueued":
            row["queued_time"] = _text(changes.get("queued_time"), 40)
        elif event.type == "ActionCheckedOut":
            row["start_time"] = _text(event.data.get("start_time"), 40)
            wait = _seconds(row["queued_time"], row["start_time"])
            if wait is not None:
                batch.observe("action_queue_wait", labels_key(engine=row["engine"], action_type=row["action_type"]),
                              wait)
        elif event.type in ACTION_ENDS:
            ran = _seconds(row["start_time"], changes.get("end_time") or event.recorded_at.isoformat())
            if event.type in ("ActionCompleted", "ActionCancelled") and row["start_time"] and ran is not None:
                batch.observe("action_duration", labels_key(engine=row["engine"], action_type=row["action_type"]),
                              ran)
            batch.actions[action_id] = None

    # ---------------------------------------------------------------------------------------- instances
    def _instance(self, batch: _Batch, event: RecordedEvent) -> None:
        instance_id = event.entity_id
        if event.type == "WorkflowInstanceCreated":
            data = event.data.get("data") or {}
            workflow_id = _text(data.get("workflow_id"), 64) or ""
            batch.count(workflow_id, "started")
            if data.get("state") == "FAILED":  # created FAILED (no datastore, no actions): started and ended
                batch.count(workflow_id, "failed")
                return
            batch.instances[instance_id] = {"instance_id": instance_id, "workflow_id": workflow_id,
                                            "queued_time": _text(data.get("queued_time"), 40), "started": False}
            return
        row = batch.instance(instance_id)
        if row is None:
            return
        if event.type == "WorkflowInstanceStarted" and not row["started"]:
            row["started"] = True
            latency = _seconds(row["queued_time"], event.data.get("start_time"))
            if latency is not None:
                batch.observe("trigger_to_first_action", labels_key(workflow_id=row["workflow_id"]), latency)
        elif event.type in INSTANCE_ENDS:
            outcome = INSTANCE_ENDS[event.type]
            if outcome is not None:
                batch.count(row["workflow_id"], outcome)
            batch.instances[instance_id] = None


class _Batch:
    """A batch's changes gathered in memory and written once: rows read on first use, None for a deleted row."""

    def __init__(self, tables: dict[str, sa.Table], conn: sa.Connection) -> None:
        self.tables = tables
        self.conn = conn
        self.actions: dict[str, dict[str, Any] | None] = {}
        self.instances: dict[str, dict[str, Any] | None] = {}
        self._loaded: set[tuple[str, str]] = set()
        self.outcomes: dict[tuple[str, str], int] = {}
        self.histograms: dict[tuple[str, str], list[Any]] = {}  # -> [buckets, sum, count]

    def _row(self, kind: str, key: str, rows: dict[str, dict[str, Any] | None], table: str,
             column: str) -> dict[str, Any] | None:
        if (kind, key) not in self._loaded:
            self._loaded.add((kind, key))
            if key not in rows:
                t = self.tables[table]
                found = self.conn.execute(sa.select(t).where(t.c[column] == key)).mappings().first()
                rows[key] = dict(found) if found is not None else None
        return rows.get(key)

    def action(self, action_id: str) -> dict[str, Any] | None:
        return self._row("action", action_id, self.actions, "stats_open_actions", "action_id")

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        return self._row("instance", instance_id, self.instances, "stats_open_instances", "instance_id")

    def count(self, workflow_id: str, outcome: str) -> None:
        self.outcomes[(workflow_id, outcome)] = self.outcomes.get((workflow_id, outcome), 0) + 1

    def observe(self, metric: str, labels: str, value: float) -> None:
        bounds = HISTOGRAMS[metric]
        found = self.histograms.get((metric, labels))
        if found is None:
            t = self.tables["stats_histograms"]
            row = self.conn.execute(sa.select(t).where(t.c.metric == metric, t.c.labels == labels)).mappings().first()
            found = ([[0] * (len(bounds) + 1), 0.0, 0, True] if row is None
                     else [json.loads(row["buckets"]), float(row["sum"]), int(row["count"]), False])
            self.histograms[(metric, labels)] = found
        found[0][bisect_left(bounds, value)] += 1  # the first bucket whose bound is >= value ("le")
        found[1] += value
        found[2] += 1

    def flush(self) -> None:
        conn, tables = self.conn, self.tables
        for (kind, rows, table, column) in (("action", self.actions, "stats_open_actions", "action_id"),
                                            ("instance", self.instances, "stats_open_instances", "instance_id")):
            t = tables[table]
            if rows:
                conn.execute(t.delete().where(t.c[column].in_(list(rows))))
            fresh = [row for row in rows.values() if row is not None]
            if fresh:
                conn.execute(t.insert(), fresh)
        t = tables["stats_run_outcomes"]
        for (workflow_id, outcome), n in self.outcomes.items():
            moved = conn.execute(t.update().where(t.c.workflow_id == workflow_id, t.c.outcome == outcome)
                                 .values(count=t.c.count + n))
            if moved.rowcount == 0:
                conn.execute(t.insert().values(workflow_id=workflow_id, outcome=outcome, count=n))
        t = tables["stats_histograms"]
        for (metric, labels), (buckets, total, count, new) in self.histograms.items():
            values = {"buckets": json.dumps(buckets), "sum": total, "count": count}
            if new:
                conn.execute(t.insert().values(metric=metric, labels=labels, **values))
            else:
                conn.execute(t.update().where(t.c.metric == metric, t.c.labels == labels).values(**values))


# ------------------------------------------------------------------------------------------- reading
def read_outcomes(conn: sa.Connection) -> list[tuple[str, str, int]]:
    """(workflow id, outcome, count) of every workflow that has runs."""
    t = _TABLES["stats_run_outcomes"]
    return [(r["workflow_id"], r["outcome"], int(r["count"])) for r in conn.execute(sa.select(t)).mappings()]


def read_histograms(conn: sa.Connection) -> list[tuple[str, dict[str, str], list[float], list[int], float, int]]:
    """(metric, labels, bucket bounds, cumulative counts per bound and +Inf, sum, count) of every series."""
    t = _TABLES["stats_histograms"]
    out = []
    for row in conn.execute(sa.select(t).order_by(t.c.metric, t.c.labels)).mappings():
        bounds = list(HISTOGRAMS.get(row["metric"], ()))
        counts = json.loads(row["buckets"])
        if len(counts) != len(bounds) + 1:
            continue  # buckets of another version of this code: skipped until a rebuild
        cumulative, running = [], 0
        for n in counts:
            running += int(n)
            cumulative.append(running)
        out.append((row["metric"], json.loads(row["labels"]), bounds, cumulative, float(row["sum"]),
                    int(row["count"])))
    return out


_TABLES = RunStats().tables
