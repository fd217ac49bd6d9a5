"""Reading subscription elements (the inline read model of projections/elements.py), and building the
element events a decision appends, in small chunks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from events.store import EventStore
from events.types import Event, Metadata, NewEvent
from projections.elements import element_table, listing_table
from projections.reads import iso
from services.domain.s3_range import chunks

ELEMENTS = element_table(sa.MetaData())
LISTINGS = listing_table(sa.MetaData())
STATES = ("UNCONSUMED", "RESERVED", "ASSIGNED", "CONSUMED")
FETCH = 2000  # rows per round trip when walking elements


def element_envelope(row: Any) -> dict[str, Any]:
    return {"id": f"{row.subscription_id}:{row.s3_path}", "subscription_id": row.subscription_id,
            "s3_path": row.s3_path, "file_size": row.file_size, "state": row.state, "batch_id": row.batch_id,
            "action_id": row.action_id, "processed": iso(row.processed), "created": iso(row.created),
            "updated": iso(row.updated)}


def stats(store: EventStore, subscription_id: str) -> list[dict[str, Any]]:
    """``[{state, count, file_size_sum}]``, one entry per state present (reference §5.7)."""
    t = ELEMENTS
    query = (sa.select(t.c.state, sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.file_size), 0))
             .where(t.c.subscription_id == subscription_id).group_by(t.c.state))
    with store.engine.connect() as conn:
        found = {state: (int(count), int(total)) for state, count, total in conn.execute(query)}
    return [{"state": s, "count": found[s][0], "file_size_sum": found[s][1]} for s in STATES if s in found]


def listing(store: EventStore, subscription_id: str) -> Any | None:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(LISTINGS).where(LISTINGS.c.subscription_id == subscription_id)).first()


def listings(store: EventStore) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(LISTINGS)))


def page(store: EventStore, where: list[sa.ColumnElement[bool]], limit: int, offset: int) -> list[Any]:
    t = ELEMENTS
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(t).where(*where).order_by(t.c.s3_path).limit(limit).offset(offset)))


def element(store: EventStore, subscription_id: str, s3_path: str) -> Any | None:
    t = ELEMENTS
    with store.engine.connect() as conn:
        return conn.execute(sa.select(t).where(t.c.subscription_id == subscription_id,
                                               t.c.s3_path == s3_path)).first()


def existing(store: EventStore, subscription_id: str, paths: list[str]) -> set[str]:
    t = ELEMENTS
    found: set[str] = set()
    with store.engine.connect() as conn:
        for start in range(0, len(paths), 900):
            found.update(conn.execute(sa.select(t.c.s3_path).where(
                t.c.subscription_id == subscription_id, t.c.s3_path.in_(paths[start:start + 900]))).scalars())
    return found


def walk(store: EventStore, *where: sa.ColumnElement[bool], order: tuple[Any, ...] = ()) -> Iterator[Any]:
    """Rows in ``s3_path`` order (or ``order``), fetched in pages by keyset, so memory stays flat."""
    t = ELEMENTS
    after: str | None = None
    while True:
        query = sa.select(t.c.s3_path, t.c.file_size, t.c.batch_id).where(*where)
        if after is not None:
            query = query.where(t.c.s3_path > after)
        with store.engine.connect() as conn:
            rows = list(conn.execute(query.order_by(t.c.s3_path).limit(FETCH)))
        yield from rows
        if len(rows) < FETCH:
            return
        after = rows[-1].s3_path


def unconsumed_bytes(store: EventStore, subscription_id: str) -> int:
    t = ELEMENTS
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c.file_size), 0)).where(
            t.c.subscription_id == subscription_id, t.c.state == "UNCONSUMED")).scalar() or 0)


def select_batch(store: EventStore, subscription_id: str, threshold: int) -> list[str]:
    """The UNCONSUMED elements, in s3_path order, up to the first whose running size reaches ``threshold``;
    [] when all of them together stay below it (reference §7, subscription_batch)."""
    if unconsumed_bytes(store, subscription_id) < threshold:
        return []
    t = ELEMENTS
    chosen: list[str] = []
    total = 0
    for row in walk(store, t.c.subscription_id == subscription_id, t.c.state == "UNCONSUMED"):
        chosen.append(row.s3_path)
        total += int(row.file_size)
        if total >= threshold:
            return chosen
    return []  # the elements changed under us: the guarded append would have failed anyway


def reserved_batches(store: EventStore, subscription_id: str) -> int:
    """How many batches are reserved and held by no action yet."""
    t = ELEMENTS
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count(sa.distinct(t.c.batch_id))).where(
            t.c.subscription_id == subscription_id, t.c.state == "RESERVED")).scalar() or 0)


def oldest_batch(store: EventStore, subscription_id: str) -> str | None:
    """The batch reserved first (by the time of its reservation, then path) that no action holds yet."""
    t = ELEMENTS
    with store.engine.connect() as conn:
        return conn.execute(sa.select(t.c.batch_id).where(t.c.subscription_id == subscription_id,
                                                          t.c.state == "RESERVED")
                            .order_by(t.c.updated, t.c.s3_path).limit(1)).scalar()


def paths_where(store: EventStore, *where: sa.ColumnElement[bool]) -> list[str]:
    return [row.s3_path for row in walk(store, *where)]


def chunked_events(prefix: str, paths: list[str], make: Callable[[str, list[str]], Event], meta: Metadata,
                   event_id: Callable[[int], uuid.UUID]) -> list[NewEvent]:
    """One event per small chunk of ``paths`` (each under ``prefix``), with derived event ids."""
    return [NewEvent(make(prefix, suffixes), meta, event_id(index))
            for index, suffixes in enumerate(chunks(prefix, paths))]


def common_prefix(paths: list[str]) -> str:
    """The longest shared prefix of the paths, cut back to a '/' so suffixes stay readable."""
    if not paths:
        return ""
    low, high = min(paths), max(paths)
    size = 0
    while size < min(len(low), len(high)) and low[size] == high[size]:
        size += 1
    shared = low[:size]
    cut = shared.rfind("/")
    return shared[:cut + 1] if cut >= 0 else ""
