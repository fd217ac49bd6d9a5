"""The launcher's run limits (issue 15), checked on its periodic tick: actions running past their timeout,
actions PENDING past their datastore's launch timeout, instances past their workflow's max_runtime_seconds;
and the retry timer, which wakes a datastore when an action's next attempt becomes due.

A timed-out action is failed first (guarded by the version it was read at, so an engine checking in at that
moment is never failed) and its engine stopped after; the failure rules then apply as to any failure. An
instance past its max_runtime_seconds is cancelled by dart. The retry timer is fed by the log (each new
attempt's ActionCreated carries its ``not_before``) and, at start, by the read model; nothing sleeps in a
worker: the tick releases what is due."""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from events.types import RecordedEvent
from projections.reads import TABLES
from services.commands.actions import try_next_actions
from services.commands.cancel import cancel_instance
from services.commands.context import Orchestration, json_field
from services.commands.sla import note_if_late
from services.domain import run_control

log = logging.getLogger("dart.limits")
DART = "dart"  # the actor of the stops dart decides itself


class RetryTimer:
    """Due times of waiting attempts -> their datastores, released on the tick once due."""

    def __init__(self, orch: Orchestration) -> None:
        self.orch = orch
        self._due: list[tuple[datetime, str, str]] = []  # (not_before, action id, datastore id)
        self._lock = threading.Lock()
        self._loaded = False

    def note(self, event: RecordedEvent) -> None:
        data = event.data.get("data") or {}
        due = run_control.waiting_until(data)
        if due is not None and data.get("datastore_id"):
            with self._lock:
                heapq.heappush(self._due, (due, event.entity_id, str(data["datastore_id"])))

    def load(self) -> None:
        """The attempts already waiting (made before this process started)."""
        table = TABLES["action"]
        rows = self.orch.rows("action", table.c.state == "HAS_NEVER_RUN",
                              json_field(table, "not_before").is_not(None))
        with self._lock:
            for row in rows:
                due = run_control.waiting_until(row.data)
                if due is not None and row.data.get("datastore_id"):
                    heapq.heappush(self._due, (due, row.id, str(row.data["datastore_id"])))

    def release(self, now: datetime) -> list[str]:
        """TRY_NEXT_ACTION on the datastore of every attempt now due; returns the attempts released."""
        if not self._loaded:
            self.load()
            self._loaded = True
        due: list[tuple[str, str]] = []
        with self._lock:
            while self._due and self._due[0][0] <= now:
                _, action_id, datastore_id = heapq.heappop(self._due)
                due.append((action_id, datastore_id))
        for datastore_id in dict.fromkeys(d for _, d in due):
            try_next_actions(self.orch, datastore_id)
        return [a for a, _ in due]


class RunLimits:
    """Timeouts, launch timeouts and instance bounds, for a launcher that knows how to stop an engine."""

    def __init__(self, orch: Orchestration, fail_if: Callable[..., bool],
                 stop_engine: Callable[[str, Any, str], bool]) -> None:
        self.orch = orch
        self.fail_if = fail_if
        self.stop_engine = stop_engine

    def enforce(self, now: datetime) -> list[str]:
        """Apply every limit once; returns what was stopped (action and instance ids)."""
        stopped: list[str] = []
        datastores: dict[str, dict[str, Any] | None] = {}

        def datastore(datastore_id: Any) -> dict[str, Any] | None:
            key = str(datastore_id)
            if key not in datastores:
                row = self.orch.reader.row("datastore", key)
                datastores[key] = row.data if row is not None else None
            return datastores[key]

        table = TABLES["action"]
        for row in self.orch.rows("action", table.c.state.in_(("PENDING", "RUNNING"))):
            store = datastore(row.data.get("datastore_id"))
            if row.data.get("state") == "RUNNING":
                limit = run_control.timed_out(row.data, store, now)
                message = f"timed out after {limit} s"
            else:
                limit = run_control.launch_timed_out(row.data, store, row.updated, now)
                message = f"its engine did not start within {limit} s (launch_timeout_seconds)"
            if limit is not None and self.fail_if(row.id, (row.data.get("state"),), message):
                log.warning("action %s %s", row.id, message)
                self.stop_engine(row.id, row.data.get("ecs_task_arn"), message)
                stopped.append(row.id)
        stopped += self._bound_instances(now)
        return stopped

    def _bound_instances(self, now: datetime) -> list[str]:
        table = TABLES["workflow_instance"]
        workflows: dict[str, dict[str, Any] | None] = {}
        stopped = []
        for row in self.orch.rows("workflow_instance", table.c.state.in_(run_control.LIVE_INSTANCE)):
            workflow_id = str(row.data.get("workflow_id"))
            if workflow_id not in workflows:
                found = self.orch.reader.row("workflow", workflow_id)
                workflows[workflow_id] = found.data if found is not None else None
            note_if_late(self.orch, row, workflows[workflow_id], now)  # sla_seconds: one "running late" mail
            limit = run_control.instance_timed_out(row.data, workflows[workflow_id], now)
            if limit is None:
                continue
            try:
                cancel_instance(self.orch, row.id, DART, f"timed out after {limit} s (max_runtime_seconds)")
                stopped.append(row.id)
            except Exception:
                log.exception("could not stop workflow instance %s past its max_runtime_seconds", row.id)
        return stopped
