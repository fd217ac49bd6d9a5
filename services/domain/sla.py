"""A workflow's SLA (issue 15): an instance still live ``sla_seconds`` after it was queued is late, once. The
event that says so has an id derived from the instance, so two launchers' ticks, or one after a restart, record
it (and the notifier mails it) once."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from events.streams.workflow_instance import WorkflowInstanceLate
from events.types import Metadata, NewEvent, StreamAppend
from services.domain.rows import Row

LIVE = ("QUEUED", "RUNNING")
_LATE = uuid.UUID("5b0f6f3e-6d2a-4c1e-9a51-6c8f7e0d2a15")


def sla_missed(instance: Mapping[str, Any], workflow: Mapping[str, Any] | None, now: datetime) -> int | None:
    """The workflow's sla_seconds a live instance has just run past (counted from its queued_time, as
    max_runtime_seconds is), or None: no SLA, not yet, ended, or already recorded late."""
    limit = (workflow or {}).get("sla_seconds")
    if not limit or instance.get("state") not in LIVE or instance.get("sla_missed_time"):
        return None
    try:
        since = datetime.fromisoformat(str(instance.get("queued_time")))
    except ValueError:
        return None
    return int(limit) if now - since >= timedelta(seconds=int(limit)) else None


def late_append(instance: Row, limit: int, now: datetime, meta: Metadata) -> StreamAppend:
    """WorkflowInstanceLate on the instance's stream at the version read, with the instance's one late id."""
    return StreamAppend(f"workflow_instance-{instance.id}", instance.version, [NewEvent(
        WorkflowInstanceLate(limit, now.isoformat()), meta, uuid.uuid5(_LATE, instance.id))])


def late_message(limit: Any) -> str:
    return f"not finished {limit} s after it was queued (its workflow's sla_seconds)"
