"""Entity read models: one table per stream category (``rm_workflow``, ``rm_action`` ...), a row per live
entity holding its folded data, version and timestamps. Inline: updated in the append's transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from events.store import EventStore
from events.streams import CATEGORY_MODULES
from events.streams.entity import State
from events.timestamps import UTCDateTime
from events.types import Event, RecordedEvent
from projections.base import JSONType, Progress, Projection, dumps, upsert
from services.domain.schemas import schema_for

_EVENT_CLASSES: dict[str, dict[str, type[Event]]] = {
    m.CATEGORY: {cls.type_name: cls for cls in m.EVENTS} for m in CATEGORY_MODULES
}


# Fields of data that decisions and list filters look up by value: promoted to indexed columns, so
# "actions of this datastore" or "instances of this workflow" is an index lookup, not a JSON scan.
PROMOTED: dict[str, tuple[str, ...]] = {
    "action": ("datastore_id", "workflow_id", "workflow_instance_id"),
    "workflow_instance": ("workflow_id",),
    "trigger": ("trigger_type_name",),
}

# Indexes over two columns, for the decisions that look up "this datastore's actions in these states".
COMPOSITE: dict[str, tuple[tuple[str, ...], ...]] = {"action": (("datastore_id", "state"),)}


def _nullable_fields(category: str) -> tuple[str, ...]:
    try:
        properties = schema_for(category)["properties"]
    except KeyError:
        return ()
    return tuple(name for name, field in properties.items()
                 if isinstance(field.get("type"), list) and "null" in field["type"])


# The fields of each kind that may be null, served as null while unset, as the original's models did (every
# field of a model was written out, None as null): so an engine's JSON Patch ``replace /data/progress`` works
# on a fresh action (issue 11). Filled in where an entity is served (projections/reads.py, create answers) and
# under a JSON Patch; the read model's row stays the fold of the stream.
NULL_WHEN_UNSET: dict[str, tuple[str, ...]] = {category: _nullable_fields(category) for category in _EVENT_CLASSES}


def with_nulls(category: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each nullable field of its kind that it lacks present as null."""
    missing = [name for name in NULL_WHEN_UNSET.get(category, ()) if name not in data]
    return {**data, **dict.fromkeys(missing)} if missing else data


def entity_table(metadata: sa.MetaData, category: str, suffix: str = "") -> sa.Table:
    name = f"rm_{category}{suffix}"
    promoted = PROMOTED.get(category, ())
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("updated", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(40), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        *(sa.Column(field, sa.String(64), nullable=True) for field in promoted),
        sa.Column("data", JSONType, nullable=False),
        sa.Index(f"ix_{name}_updated", "updated"),
        sa.Index(f"ix_{name}_state", "state"),
        sa.Index(f"ix_{name}_name", "name"),
        *(sa.Index(f"ix_{name}_{field}", field) for field in promoted),
        *(sa.Index(f"ix_{name}_{'_'.join(columns)}", *columns) for columns in COMPOSITE.get(category, ())),
    )


class _Folding:
    """One entity's fold in progress."""

    __slots__ = ("created", "existed", "state", "updated", "version")

    def __init__(self, state: State, version: int, created: datetime | None, existed: bool) -> None:
        self.state = state
        self.version = version
        self.created = created
        self.updated = created
        self.existed = existed

    def step(self, cls: type[Event], event: RecordedEvent) -> None:
        before = self.state
        self.state = cls(**event.data).evolve(before)  # type: ignore[attr-defined]
        if before is None and self.state is not None:
            self.created = event.recorded_at
        self.version = event.stream_version
        self.updated = event.recorded_at

    def row(self, entity_id: str, promoted: tuple[str, ...] = ()) -> dict[str, Any]:
        state = self.state or {}
        row = {
            "id": entity_id,
            "version": self.version,
            "created": self.created,
            "updated": self.updated,
            "state": _text(state.get("state")),
            "name": _text(state.get("name")),
            "data": state,
        }
        for field in promoted:
            row[field] = _text(state.get(field))
        return row


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class EntityProjection(Projection):
    mode = "inline"

    def __init__(self, category: str, suffix: str = "") -> None:
        self.category = category
        self.name = f"entities.{category}"
        self._classes = _EVENT_CLASSES[category]
        self.promoted = PROMOTED.get(category, ())
        super().__init__(suffix)
        self.table = self.tables[f"rm_{category}"]

    def define_tables(self, metadata: sa.MetaData, suffix: str) -> dict[str, sa.Table]:
        return {f"rm_{self.category}": entity_table(metadata, self.category, suffix)}

    def shadow_args(self) -> tuple[Any, ...]:
        return (self.category,)

    def handles(self, type_name: str) -> bool:
        return type_name in self._classes

    def apply(self, conn: sa.Connection, events: Sequence[RecordedEvent]) -> None:
        by_entity: dict[str, list[RecordedEvent]] = {}
        for event in events:
            by_entity.setdefault(event.entity_id, []).append(event)
        t = self.table
        existing = {
            r.id: r
            for r in conn.execute(
                sa.select(t.c.id, t.c.version, t.c.created, t.c.data).where(t.c.id.in_(list(by_entity)))
            )
        }
        upserts: list[dict[str, Any]] = []
        deletes: list[str] = []
        for entity_id, mine in by_entity.items():
            row = existing.get(entity_id)
            folding = (
                _Folding(row.data, row.version, row.created, True)
                if row is not None
                else _Folding(None, 0, None, False)
            )
            for event in mine:
                folding.step(self._classes[event.type], event)
            if folding.state is None:
                if folding.existed:
                    deletes.append(entity_id)
            else:
                upserts.append(folding.row(entity_id, self.promoted))
        if deletes:
            conn.execute(t.delete().where(t.c.id.in_(deletes)))
        upsert(conn, t, upserts, ["id"])

    # ------------------------------------------------------------------------------------- rebuild
    def rebuild_from(self, store: EventStore, until_position: int, progress: Progress = None) -> int:
        """Fill the (empty) tables from every event up to a position, one entity at a time; returns how
        many events were read. PostgreSQL loads with one COPY; SQLite commits every few thousand rows so
        appends (one writer at a time) are not held up for the whole load."""
        rows = self._fold_streams(store.iter_category(self.category, until_position), progress)
        if store.engine.dialect.name == "postgresql":
            names = [c.name for c in self.table.columns]
            columns = ", ".join(names)
            with store.transaction() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None  # a live connection inside the transaction
                with raw.cursor().copy(f'COPY "{self.table.name}" ({columns}) FROM STDIN') as copy:
                    for row in rows:
                        copy.write_row(tuple(dumps(row[n]) if n == "data" else row[n] for n in names))
        else:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= 5000:
                    with store.transaction() as conn:
                        conn.execute(self.table.insert(), batch)
                    batch = []
            if batch:
                with store.transaction() as conn:
                    conn.execute(self.table.insert(), batch)
        return self._events_read

    def _fold_streams(self, events: Iterator[RecordedEvent], progress: Progress) -> Iterator[dict[str, Any]]:
        current: str | None = None
        folding = _Folding(None, 0, None, False)
        classes = self._classes
        self._events_read = 0
        for event in events:
            self._events_read += 1
            if progress is not None and self._events_read % 10000 == 0:
                progress(10000)
            if event.stream_id != current:
                if current is not None and folding.state is not None:
                    yield folding.row(current.split("-", 1)[1], self.promoted)
                current = event.stream_id
                folding = _Folding(None, 0, None, False)
            cls = classes.get(event.type)
            if cls is not None:
                folding.step(cls, event)
        if current is not None and folding.state is not None:
            yield folding.row(current.split("-", 1)[1], self.promoted)
        if progress is not None:
            progress(self._events_read % 10000)
