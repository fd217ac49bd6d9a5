"""Projection checkpoints: the last global position a checkpointed reader has fully handled.

A checkpoint is written in the same transaction as the effects of the events before it, so a crash either
keeps both or neither.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from events.timestamps import UTCDateTime

_metadata = sa.MetaData()
checkpoints = sa.Table(
    "projection_checkpoints",
    _metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("position", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


def read_checkpoint(conn: sa.Connection, name: str) -> int:
    found = conn.execute(sa.select(checkpoints.c.position).where(checkpoints.c.name == name)).scalar()
    return int(found) if found is not None else 0


def all_checkpoints(conn: sa.Connection) -> dict[str, int]:
    return {r.name: int(r.position) for r in conn.execute(sa.select(checkpoints.c.name, checkpoints.c.position))}


def advance_checkpoint(conn: sa.Connection, name: str, expected: int, position: int) -> bool:
    """Move ``name`` from ``expected`` to ``position``; False when another reader moved it first."""
    now = datetime.now(UTC)
    if expected == 0:
        exists = conn.execute(sa.select(checkpoints.c.position).where(checkpoints.c.name == name)).scalar()
        if exists is None:
            conn.execute(checkpoints.insert().values(name=name, position=position, updated_at=now))
            return True
    moved = conn.execute(
        checkpoints.update()
        .where(checkpoints.c.name == name, checkpoints.c.position == expected)
        .values(position=position, updated_at=now)
    )
    return moved.rowcount == 1


def set_checkpoint(conn: sa.Connection, name: str, position: int) -> None:
    now = datetime.now(UTC)
    moved = conn.execute(
        checkpoints.update().where(checkpoints.c.name == name).values(position=position, updated_at=now)
    )
    if moved.rowcount == 0:
        conn.execute(checkpoints.insert().values(name=name, position=position, updated_at=now))
