"""Subscription elements (reference §3.8): a row per file of a subscription, with its state, batch, action and
``processed`` time, folded from the subscription stream's element events. Inline, so the decisions that
reserve and assign elements read it in the same state their append is guarded by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from events.streams import subscription as events
from events.timestamps import UTCDateTime
from events.types import RecordedEvent
from projections.base import Projection

TABLE = "rm_subscription_element"
LISTING = "rm_subscription_listing"
_TYPES = {cls.type_name: cls for cls in (*events.ELEMENT_EVENTS, events.SubscriptionDeleted,
                                         events.SubscriptionGenerationStarted)}
_CHUNK = 900  # paths per IN (...) list: well under SQLite's bound-parameter limit


def element_table(metadata: sa.MetaData, suffix: str = "") -> sa.Table:
    name = f"{TABLE}{suffix}"
    return sa.Table(
        name,
        metadata,
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("s3_path", sa.Text(), primary_key=True),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("action_id", sa.String(64), nullable=True),
        sa.Column("processed", UTCDateTime(), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("updated", UTCDateTime(), nullable=False),
        sa.Index(f"ix_{name}_state", "subscription_id", "state", "s3_path"),
        sa.Index(f"ix_{name}_action", "action_id"),
    )


def listing_table(metadata: sa.MetaData, suffix: str = "") -> sa.Table:
    """Per subscription: the range its generation resolved, and the head of its listing (the last listing
    event, the last key listed, whether more follow): where a resumed generation continues."""
    return sa.Table(
        f"{LISTING}{suffix}",
        metadata,
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("start_prefix", sa.Text(), nullable=True),
        sa.Column("end_prefix", sa.Text(), nullable=True),
        sa.Column("regex", sa.Text(), nullable=True),
        sa.Column("listed_through", sa.Text(), nullable=True),
        sa.Column("last_event_id", sa.String(36), nullable=False),
        sa.Column("more", sa.Boolean(), nullable=False),
    )


class ElementProjection(Projection):
    name = "subscription_elements"
    mode = "inline"

    def define_tables(self, metadata: sa.MetaData, suffix: str) -> dict[str, sa.Table]:
        return {TABLE: element_table(metadata, suffix), LISTING: listing_table(metadata, suffix)}

    @property
    def table(self) -> sa.Table:
        return self.tables[TABLE]

    @property
    def listing(self) -> sa.Table:
        return self.tables[LISTING]

    def handles(self, type_name: str) -> bool:
        return type_name in _TYPES

    def apply(self, conn: sa.Connection, batch: Sequence[RecordedEvent]) -> None:
        t = self.table
        for recorded in batch:
            subscription_id = recorded.entity_id
            at = recorded.recorded_at
            if recorded.type == "SubscriptionDeleted":
                conn.execute(sa.delete(t).where(t.c.subscription_id == subscription_id))
                conn.execute(sa.delete(self.listing).where(self.listing.c.subscription_id == subscription_id))
                continue
            event: Any = _TYPES[recorded.type](**recorded.data)
            if isinstance(event, events.SubscriptionGenerationStarted):
                scope = event.range
                conn.execute(sa.delete(self.listing).where(self.listing.c.subscription_id == subscription_id))
                conn.execute(sa.insert(self.listing).values(
                    subscription_id=subscription_id, root=scope["root"], start_prefix=scope.get("start"),
                    end_prefix=scope.get("end"), regex=scope.get("regex"), listed_through=None,
                    last_event_id=str(recorded.event_id), more=True))
                continue
            if isinstance(event, events.SubscriptionElementsAdded):
                if event.source == "listing":
                    conn.execute(sa.update(self.listing).where(self.listing.c.subscription_id == subscription_id)
                                 .values(listed_through=event.listed_through, more=event.more,
                                         last_event_id=str(recorded.event_id)))
                rows = [{"subscription_id": subscription_id, "s3_path": event.prefix + suffix, "file_size": int(size),
                         "state": "UNCONSUMED", "batch_id": None, "action_id": None, "processed": None,
                         "created": at, "updated": at} for suffix, size in event.elements]
                _insert_new(conn, t, rows)
                continue
            changes: dict[str, Any] = {"updated": at}
            if isinstance(event, events.SubscriptionBatchReserved):
                changes.update(state="RESERVED", batch_id=event.batch_id)
            elif isinstance(event, events.SubscriptionElementsAssigned):
                changes.update(state="ASSIGNED", action_id=event.action_id)
            elif isinstance(event, events.SubscriptionElementsConsumed):
                changes.update(state="CONSUMED", processed=at)
            else:  # released: UNCONSUMED again, keeping batch and action (reference §4.6)
                changes.update(state="UNCONSUMED")
            paths = event.paths()
            for start in range(0, len(paths), _CHUNK):
                conn.execute(sa.update(t).where(t.c.subscription_id == subscription_id,
                                                t.c.s3_path.in_(paths[start:start + _CHUNK])).values(**changes))


def _insert_new(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(table).on_conflict_do_nothing(index_elements=["subscription_id", "s3_path"]), rows)
