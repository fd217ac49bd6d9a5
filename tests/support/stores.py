"""The backends every store test runs on, and small helpers for tests that work with an EventStore."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from events.store import EventStore
from events.types import RecordedEvent

# Every store-backed test runs once per backend; the PostgreSQL run is marked so `-m "not postgres"` skips it.
BACKENDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


def url_of(store: EventStore) -> str:
    """The URL of the store's database, to open another store (or a raw connection) on it."""
    return store.engine.url.render_as_string(hide_password=False)


def everything(store: EventStore) -> list[RecordedEvent]:
    """Every stored event, in global order."""
    return list(store.iter_all())


def snapshot(store: EventStore) -> tuple[int, list[RecordedEvent]]:
    """(head position, every event): compare before and after an operation that must change nothing."""
    return store.head_position(), everything(store)


def raw_rows(store: EventStore, sql: str, params: dict[str, Any] | None = None) -> Sequence[sa.Row]:
    """Rows of a raw SQL query on the store's own database, bypassing the store (and its upcasting)."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(sql), params or {}).fetchall()
        conn.rollback()
    return rows
