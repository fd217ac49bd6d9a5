"""The event log and projection checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UUID = sa.String(36).with_variant(postgresql.UUID(as_uuid=True), "postgresql")
POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Stream ids compare byte-wise, so a category's streams are one index range ("workflow-" <= id < "workflow.").
STREAM_ID = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(40), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("global_position", POSITION, primary_key=True, autoincrement=True),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("stream_id", STREAM_ID, nullable=False),
        sa.Column("stream_version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        sa.UniqueConstraint("stream_id", "stream_version", name="uq_events_stream_version"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_type_position", "events", ["type", "global_position"])
    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("projection_checkpoints")
    op.drop_index("ix_events_type_position", table_name="events")
    op.drop_table("events")
