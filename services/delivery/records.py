"""What a broker-fed consumer has handled: (consumer, event_id) rows, recorded in the same database as the
consumer's effects, so a redelivered message is recognised and skipped (design.md §4: at least once, with
(consumer, event_id) recorded with the effects). The inbox records its messages here too."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from events.store import EventStore
from events.timestamps import UTCDateTime


class _UUIDText(sa.types.TypeDecorator):
    """A UUID column: native uuid on PostgreSQL, its 36-character text on SQLite (as the events table)."""

    impl = sa.String(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID(as_uuid=True))
        return dialect.type_descriptor(sa.String(36))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        value = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> uuid.UUID | None:
        if value is None:
            return None
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


_metadata = sa.MetaData()
consumer_records = sa.Table(  # created by migration 0004
    "consumer_records",
    _metadata,
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("event_id", _UUIDText(), primary_key=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)


def was_handled(store: EventStore, consumer: str, event_id: uuid.UUID) -> bool:
    with store.engine.connect() as conn:
        found = conn.execute(
            sa.select(sa.literal(1)).where(
                consumer_records.c.consumer == consumer, consumer_records.c.event_id == event_id
            )
        ).first()
        conn.rollback()
    return found is not None


def record_handled(store: EventStore, consumer: str, event_id: uuid.UUID) -> None:
    """Record that ``consumer`` handled ``event_id``; a record that exists already (a racing redelivery) is
    left as it is."""
    values = {"consumer": consumer, "event_id": event_id, "recorded_at": datetime.now(UTC)}
    dialect = store.engine.dialect.name
    insert: Any
    if dialect == "postgresql":
        insert = postgresql.insert(consumer_records).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        insert = sqlite.insert(consumer_records).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - the store supports these two only
        insert = consumer_records.insert().values(**values)
    with store.transaction() as conn:
        conn.execute(insert)


def handled_event_ids(store: EventStore, consumer: str) -> list[uuid.UUID]:
    """Every event id ``consumer`` recorded, for operators and tests."""
    with store.engine.connect() as conn:
        query = sa.select(consumer_records.c.event_id).where(consumer_records.c.consumer == consumer)
        return [r.event_id for r in conn.execute(query)]
