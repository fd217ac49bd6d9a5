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


STREAM_VERSION_FUNCTION = """
CREATE FUNCTION dart_stream_version(p_stream text, p_expected integer) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    current integer;
BEGIN
    SELECT COALESCE(max(stream_version), 0) INTO current FROM events WHERE stream_id = p_stream;
    IF p_expected IS NOT NULL AND current <> p_expected THEN
        RAISE EXCEPTION USING ERRCODE = 'DV001',
            MESSAGE = format('version conflict on %s: expected %s, actual %s', p_stream, p_expected, current),
            DETAIL = current::text;
    END IF;
    RETURN current;
END
$$
"""


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
    if op.get_bind().dialect.name == "postgresql":
        # VOLATILE: each query inside sees a fresh snapshot, taken after the append's ordering lock, so the
        # version it reads is the committed truth (a statement's own snapshot predates its lock wait).
        op.execute(STREAM_VERSION_FUNCTION)
    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS dart_stream_version(text, integer)")
    op.drop_table("projection_checkpoints")
    op.drop_index("ix_events_type_position", table_name="events")
    op.drop_table("events")
