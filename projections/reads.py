"""Reading entities: rows of the inline read models as the original's envelope, lists with filters and
paging, one entity as of a past position or moment, and an entity's history."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from events.store import EventStore
from events.streams import CATEGORIES
from events.types import RecordedEvent
from projections.entities import entity_table, with_nulls
from services.domain.errors import BadRequest, NotFound

_METADATA = sa.MetaData()
TABLES: dict[str, sa.Table] = {c: entity_table(_METADATA, c) for c in CATEGORIES}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def envelope(row: Any, category: str = "") -> dict[str, Any]:
    """A read model row as the API serves it: unset nullable fields of its ``category`` as null."""
    return {
        "id": row.id,
        "version_id": row.version,
        "created": iso(row.created),
        "updated": iso(row.updated),
        "data": with_nulls(category, row.data),
    }


@dataclass
class Page:
    results: list[dict[str, Any]]
    limit: int
    offset: int
    total: int

    def as_dict(self) -> dict[str, Any]:
        return {"results": self.results, "limit": self.limit, "offset": self.offset, "total": self.total}


DEFERRED_JOIN_OFFSET = 500  # from this offset on, a page is read as ids first (see ``page``)


class EntityReader:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def row(self, category: str, entity_id: str, conn: sa.Connection | None = None) -> Any | None:
        table = TABLES[category]
        query = sa.select(table).where(table.c.id == entity_id)
        if conn is not None:
            return conn.execute(query).first()
        with self.store.read_engine.connect() as c:
            return c.execute(query).first()

    def get(self, category: str, entity_id: str) -> dict[str, Any]:
        row = self.row(category, entity_id)
        if row is None:
            raise NotFound(category, entity_id)
        return envelope(row, category)

    def data(self, category: str, entity_id: str) -> dict[str, Any]:
        return self.get(category, entity_id)["data"]

    def find_by(self, category: str, **fields: Any) -> list[dict[str, Any]]:
        """Entities whose data fields equal the given values (small sets: names, parent ids)."""
        table = TABLES[category]
        query = sa.select(table)
        for name, value in fields.items():
            if name == "name":
                query = query.where(table.c.name == value)
            elif name == "state" or name in table.c:
                query = query.where(table.c[name] == value)  # promoted, indexed columns
            else:
                query = query.where(_json_text(table, name) == str(value))
        with self.store.read_engine.connect() as conn:
            return [envelope(r, category) for r in conn.execute(query)]

    def page(
        self,
        category: str,
        *,
        limit: int,
        offset: int,
        where: list[sa.ColumnElement[bool]] | None = None,
        order: list[sa.ColumnElement[Any]] | None = None,
        default_order: str = "desc",
    ) -> Page:
        table = TABLES[category]
        clauses = where or []
        base = sa.select(table).where(*clauses)
        if order:
            ordering = [*order, table.c.id]
        elif default_order == "asc":
            ordering = [table.c.updated.asc(), table.c.id.asc()]
        else:
            ordering = [table.c.updated.desc(), table.c.id.desc()]
        with self.store.read_engine.connect() as conn:
            if offset >= DEFERRED_JOIN_OFFSET:
                # Deep in a long list: find the page's ids first, sorting only the narrow key columns, then
                # read those rows whole (sorting every row's JSON to skip most of them is what costs).
                key = sa.select(table.c.id).where(*clauses).order_by(*ordering).limit(limit).offset(offset)
                ids = [r[0] for r in conn.execute(key)]
                found = {r.id: r for r in conn.execute(sa.select(table).where(table.c.id.in_(ids)))} if ids else {}
                rows = [found[i] for i in ids if i in found]
            else:
                rows = list(conn.execute(base.order_by(*ordering).limit(limit).offset(offset)).all())
            if 0 < len(rows) < limit or (not rows and offset == 0):
                total = offset + len(rows)  # a short page is the last one: no need to count
            else:
                total = conn.execute(sa.select(sa.func.count()).select_from(table).where(*clauses)).scalar() or 0
        return Page([envelope(r, category) for r in rows], limit, offset, int(total))

    # -------------------------------------------------------------------------------- time travel
    def as_of(self, category: str, entity_id: str, as_of: str) -> dict[str, Any]:
        """The entity as it was at a global position (an integer) or a moment (ISO 8601 with offset)."""
        position, at = parse_as_of(as_of)
        events = self.store.read_until(f"{category}-{entity_id}", position=position, at=at)
        state = fold(self.store, events)
        if state is None:
            raise NotFound(category, entity_id)
        state = with_nulls(category, state)
        created = next(e.recorded_at for e in events if e.type.endswith("Created"))
        return {
            "id": entity_id,
            "version_id": events[-1].stream_version,
            "created": iso(created),
            "updated": iso(events[-1].recorded_at),
            "data": state,
        }

    def history(self, category: str, entity_id: str, limit: int, offset: int) -> Page:
        """One page of the entity's events: only that page is read, however long the stream (a subscription
        with a large listing has thousands of element events)."""
        stream = f"{category}-{entity_id}"
        total = self.store.stream_version(stream)
        if not total:
            raise NotFound(category, entity_id)
        chosen = self.store.read_stream(stream, from_version=offset + 1, to_version=offset + limit) if limit else []
        return Page([e.as_dict() for e in chosen], limit, offset, total)


def fold(store: EventStore, events: list[RecordedEvent]) -> dict[str, Any] | None:
    state: dict[str, Any] | None = None
    for event in events:
        state = store.registry.decode(event.type, event.data).evolve(state)  # type: ignore[attr-defined]
    return state


_POSITION = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() is true for "²" and "4¹5", which int() refuses
_MAX_POSITION = 2**63 - 1  # a bigint


def parse_as_of(value: str) -> tuple[int | None, datetime | None]:
    """A global position (ASCII digits) or an ISO 8601 time with an offset; anything else a 400 naming as_of."""
    if _POSITION.fullmatch(value):
        position = int(value) if len(value) <= 19 else _MAX_POSITION + 1
        if position > _MAX_POSITION:
            raise BadRequest(f"as_of: {value!r} is past the largest global position ({_MAX_POSITION})")
        return position, None
    try:
        at = datetime.fromisoformat(value)  # 3.11 reads a trailing Z
    except ValueError as exc:
        raise BadRequest(f"as_of: {value!r} is neither a global position nor an ISO 8601 time") from exc
    if at.tzinfo is None:
        raise BadRequest(f"as_of: {value!r} needs a UTC offset, e.g. {value}+00:00")
    try:
        return None, at.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00: before the first moment Python holds in UTC
        raise BadRequest(f"as_of: {value!r} is out of range in UTC") from None


def _json_text(table: sa.Table, field: str) -> sa.ColumnElement[Any]:
    return table.c.data[field].as_string()


