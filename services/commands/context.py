"""What the orchestration commands share: the store, the reader, and the few queries they read their state with
(the rules they decide by are in services/domain)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from events.store import EventStore
from projections.reads import TABLES, EntityReader
from services.domain.ids import derived_event_id, derived_id

__all__ = ["LIVE", "Orchestration", "derived_event_id", "derived_id", "json_field"]

LIVE = ("HAS_NEVER_RUN", "QUEUED", "PENDING", "RUNNING", "FINISHING")


def json_field(table: sa.Table, name: str) -> sa.ColumnElement[Any]:
    if name in table.c:  # a promoted, indexed copy of data.<name>
        return table.c[name]
    return table.c.data[name].as_string()


class InlineLauncher(Protocol):
    """A launcher in the orchestrator's own process (the embedded mode's local engines): the orchestration
    takes slots for it in its queueing appends and hands it the actions made PENDING."""

    mints_keys: bool

    def launch_taken(self, pending: list[dict[str, Any]], datastore: dict[str, Any]) -> None: ...


class Orchestration:
    def __init__(self, store: EventStore, s3_datastores_root: str = "s3://dart/datastores",
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.reader = EntityReader(store)
        self.s3_datastores_root = s3_datastores_root
        # "Now" for the schedules' decisions (pause, unpause, backfill): the scheduler's clock (settings'
        # clock_offset_seconds), so a rehearsal or a test that shifts it sees one time everywhere.
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        # Actions whose completion already decided their datastore's next action (in its own append): the
        # TRY_NEXT_ACTION their ActionCompleted would cause finds nothing, and is skipped in this process.
        self._decided: OrderedDict[str, None] = OrderedDict()
        self.launcher: InlineLauncher | None = None  # set by the composition root where one runs beside

    def launch_pending(self, pending: list[dict[str, Any]], datastore: dict[str, Any] | None) -> None:
        """Launch what this process's queueing just moved to PENDING (its intent is in the log: a launch that
        fails or never happens is the stale-PENDING rule's, as with the launcher's own slot-taking)."""
        if pending and self.launcher is not None and datastore is not None:
            self.launcher.launch_taken(pending, datastore)

    def next_decided(self, action_id: str) -> None:
        self._decided[action_id] = None
        while len(self._decided) > 10_000:
            self._decided.popitem(last=False)

    def take_next_decided(self, action_id: str) -> bool:
        """True (once) if this process's completion of the action already decided what runs next."""
        return self._decided.pop(action_id, False) is None

    def rows(self, category: str, *where: sa.ColumnElement[bool]) -> list[Any]:
        table = TABLES[category]
        with self.store.read_engine.connect() as conn:
            return list(conn.execute(sa.select(table).where(*where)))

    def actions_where(self, *where: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
        return [{**r.data, "id": r.id, "_version": r.version} for r in self.rows("action", *where)]

    def actions_of_datastore(self, datastore_id: str) -> list[dict[str, Any]]:
        """The datastore's actions that are waiting or in flight (HAS_NEVER_RUN .. FINISHING): what every
        next-action and slot decision looks at. Finished actions and templates are left out, so a decision
        costs the same after a million runs as after one."""
        table = TABLES["action"]
        return self.actions_where(json_field(table, "datastore_id") == datastore_id, table.c.state.in_(LIVE))

    def actions_of_instance(self, instance_id: str) -> list[dict[str, Any]]:
        return self.actions_where(json_field(TABLES["action"], "workflow_instance_id") == instance_id)

    def template_actions(self, workflow_id: str) -> list[tuple[str, dict[str, Any]]]:
        table = TABLES["action"]
        rows = self.rows("action", json_field(table, "workflow_id") == workflow_id, table.c.state == "TEMPLATE")
        rows.sort(key=lambda r: (float(r.data.get("order_idx") or 0), r.created))
        return [(r.id, r.data) for r in rows]

    def triggers(self, type_name: str) -> list[Any]:
        table = TABLES["trigger"]
        return self.rows("trigger", table.c.state == "ACTIVE", json_field(table, "trigger_type_name") == type_name)
