"""The SLA check on the launcher's tick (issue 15): a live instance past its workflow's ``sla_seconds`` is
recorded late (WorkflowInstanceLate), which the notifier mails as "running late"."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from events.errors import ConcurrencyError
from events.types import Metadata
from services.commands.context import Orchestration
from services.domain import sla

log = logging.getLogger("dart.limits")
META = Metadata(actor="dart")


def note_if_late(orch: Orchestration, instance: Any, workflow: Mapping[str, Any] | None, now: datetime) -> bool:
    """Record the instance late if it just ran past its SLA; True when this call recorded it. An instance that
    moved meanwhile (a conflict) is left to the next tick, which re-reads it."""
    limit = sla.sla_missed(instance.data, workflow, now)
    if limit is None:
        return False
    try:
        orch.store.append(sla.late_append(instance, limit, now, META))
    except ConcurrencyError:
        return False
    except Exception:
        log.exception("could not record workflow instance %s late", instance.id)
        return False
    log.warning("workflow instance %s is running late: %s", instance.id, sla.late_message(limit))
    return True
