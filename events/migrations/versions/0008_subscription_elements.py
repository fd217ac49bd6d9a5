"""Subscription elements: one row per file of a subscription, and one row per subscription for its listing
(the resolved range and how far generation got), folded from the subscription stream (projections/elements.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(40), "sqlite")
NAME = "rm_subscription_element"


def upgrade() -> None:
    op.create_table(
        NAME,
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("s3_path", sa.Text(), primary_key=True),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("action_id", sa.String(64), nullable=True),
        sa.Column("processed", TIMESTAMP, nullable=True),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("updated", TIMESTAMP, nullable=False),
    )
    op.create_index(f"ix_{NAME}_state", NAME, ["subscription_id", "state", "s3_path"])
    op.create_index(f"ix_{NAME}_action", NAME, ["action_id"])
    op.create_table(
        "rm_subscription_listing",
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("start_prefix", sa.Text(), nullable=True),
        sa.Column("end_prefix", sa.Text(), nullable=True),
        sa.Column("regex", sa.Text(), nullable=True),
        sa.Column("listed_through", sa.Text(), nullable=True),
        sa.Column("last_event_id", sa.String(36), nullable=False),
        sa.Column("more", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rm_subscription_listing")
    op.drop_table(NAME)
