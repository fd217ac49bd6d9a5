"""Entity read models (one table per stream category) and the event-type statistics table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(40), "sqlite")
# Frozen here on purpose: a migration never follows later changes to the code's list of categories.
CATEGORIES = (
    "engine", "dataset", "datastore", "action", "workflow", "workflow_instance", "trigger", "subscription",
    "event",
)


def upgrade() -> None:
    for category in CATEGORIES:
        name = f"rm_{category}"
        op.create_table(
            name,
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("created", TIMESTAMP, nullable=False),
            sa.Column("updated", TIMESTAMP, nullable=False),
            sa.Column("state", sa.String(40), nullable=True),
            sa.Column("name", sa.String(200), nullable=True),
            sa.Column("data", JSON, nullable=False),
        )
        for column in ("updated", "state", "name"):
            op.create_index(f"ix_{name}_{column}", name, [column])
    op.create_table(
        "stats_event_type_counts",
        sa.Column("type", sa.String(200), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.Column("last_recorded_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stats_event_type_counts")
    for category in CATEGORIES:
        op.drop_table(f"rm_{category}")
