"""Consumer records: which broker-fed consumer has handled which event (or inbox message), so a redelivery
is skipped (design.md §4).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UUID = sa.String(36).with_variant(postgresql.UUID(as_uuid=True), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(40), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consumer_records",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_id", UUID, primary_key=True),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("consumer_records")
