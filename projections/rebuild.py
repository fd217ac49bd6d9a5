"""Rebuilding read models from the log into fresh tables, then swapping them in while appends go on.

1. Create the fresh tables (``<name>__rebuild``) without indexes and fill them from the log up to the head
   seen at the start. 2. Build their indexes. 3. Catch up on what was appended meanwhile, in batches.
4. In one transaction that no append can commit through, apply the last few events, drop the live tables,
   rename the fresh ones (and their indexes) into place, and for async projections move the checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from events.checkpoints import set_checkpoint
from events.store import EventStore
from projections.base import Projection
from projections.catalog import by_name

SUFFIX = "__rebuild"
CATCH_UP_BATCH = 5000


@dataclass
class RebuildResult:
    name: str
    events: int
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class RebuildSummary:
    results: list[RebuildResult]
    seconds: float

    @property
    def events(self) -> int:
        return sum(r.events for r in self.results)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def rebuild(
    store: EventStore, projection: Projection, progress: Callable[[int], None] | None = None
) -> RebuildResult:
    started = time.perf_counter()
    shadow = projection.shadow(SUFFIX)
    types = [t for t in store.registry.names() if projection.handles(t)]
    with store.transaction() as conn:
        for table in shadow.tables.values():
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table.name}"')
            conn.execute(sa.schema.CreateTable(table))
    head = store.head_position()
    events = shadow.rebuild_from(store, head, progress)
    with store.transaction() as conn:
        for table in shadow.tables.values():
            for index in table.indexes:
                index.create(conn)
    position = head
    while True:  # catch up outside the exclusive swap, so appends wait only for the last few events
        batch = store.read_all(position, CATCH_UP_BATCH, types=types)
        if batch:
            with store.transaction() as conn:
                shadow.apply(conn, batch)
            position = batch[-1].global_position
            events += len(batch)
            if progress is not None:
                progress(len(batch))
        if len(batch) < CATCH_UP_BATCH:
            break
    with store.exclusive_transaction() as conn:
        tail = store.read_all(position, 10**9, types=types)
        if tail:
            shadow.apply(conn, tail)
            events += len(tail)
        _swap(conn, projection, shadow)
        if projection.mode == "async":
            set_checkpoint(conn, projection.name, store.head_position())
        rows = {
            name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)
            for name, table in projection.tables.items()
        }
    return RebuildResult(projection.name, events, time.perf_counter() - started, rows)


def _swap(conn: sa.Connection, live: Projection, shadow: Projection) -> None:
    postgres = conn.dialect.name == "postgresql"
    for key, live_table in live.tables.items():
        fresh = shadow.tables[key]
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{live_table.name}"')
        conn.exec_driver_sql(f'ALTER TABLE "{fresh.name}" RENAME TO "{live_table.name}"')
        live_indexes = {str(i.name): i for i in live_table.indexes}
        for index in fresh.indexes:
            canonical = str(index.name).replace(fresh.name, live_table.name)
            if postgres:
                conn.exec_driver_sql(f'ALTER INDEX "{index.name}" RENAME TO "{canonical}"')
            else:  # SQLite cannot rename an index: build it again under its own name
                conn.exec_driver_sql(f'DROP INDEX "{index.name}"')
                live_indexes[canonical].create(conn)
        if postgres:
            conn.exec_driver_sql(
                f'ALTER TABLE "{live_table.name}" RENAME CONSTRAINT "{fresh.name}_pkey" TO "{live_table.name}_pkey"'
            )


def rebuild_all(
    store: EventStore,
    names: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RebuildSummary:
    started = time.perf_counter()
    results = [rebuild(store, p, progress) for p in by_name(names)]
    return RebuildSummary(results, time.perf_counter() - started)
