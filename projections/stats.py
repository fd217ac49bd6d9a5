"""Event counts per type: an async projection for dashboards and outside readers (not read by the API)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa

from events.store import EventStore
from events.timestamps import UTCDateTime
from events.types import RecordedEvent
from projections.base import Progress, Projection


class EventTypeCounts(Projection):
    name = "stats.event_type_counts"
    mode = "async"

    def define_tables(self, metadata: sa.MetaData, suffix: str) -> dict[str, sa.Table]:
        return {
            "stats_event_type_counts": sa.Table(
                f"stats_event_type_counts{suffix}",
                metadata,
                sa.Column("type", sa.String(200), primary_key=True),
                sa.Column("count", sa.BigInteger(), nullable=False),
                sa.Column("last_position", sa.BigInteger(), nullable=False),
                sa.Column("last_recorded_at", UTCDateTime(), nullable=False),
            )
        }

    def handles(self, type_name: str) -> bool:
        return True

    def rebuild_from(self, store: EventStore, until_position: int, progress: Progress = None) -> int:
        """Counting is an aggregate: one GROUP BY over the log instead of replaying every event."""
        t = self.tables["stats_event_type_counts"]
        query = sa.text(
            "SELECT e.type, c.n, c.last, e.recorded_at FROM (SELECT type, count(*) AS n, max(global_position)"
            " AS last FROM events WHERE global_position <= :until GROUP BY type) c"
            " JOIN events e ON e.global_position = c.last"
        ).columns(sa.column("type"), sa.column("n"), sa.column("last"),
                  sa.column("recorded_at", UTCDateTime()))
        with store.transaction() as conn:
            rows = conn.execute(query, {"until": until_position}).all()
            if rows:
                conn.execute(t.insert(), [{"type": r.type, "count": int(r.n), "last_position": int(r.last),
                                           "last_recorded_at": r.recorded_at} for r in rows])
        total = sum(int(r.n) for r in rows)
        if progress is not None:
            progress(total)
        return total

    def apply(self, conn: sa.Connection, events: Sequence[RecordedEvent]) -> None:
        t = self.tables["stats_event_type_counts"]
        counts = Counter(e.type for e in events)
        last = {e.type: e for e in events}
        present = {
            r.type
            for r in conn.execute(sa.select(t.c.type).where(t.c.type.in_(list(counts))))
        }
        for type_name, n in counts.items():
            event = last[type_name]
            if type_name in present:
                conn.execute(
                    t.update()
                    .where(t.c.type == type_name)
                    .values(count=t.c.count + n, last_position=event.global_position,
                            last_recorded_at=event.recorded_at)
                )
            else:
                conn.execute(
                    t.insert().values(type=type_name, count=n, last_position=event.global_position,
                                      last_recorded_at=event.recorded_at)
                )
