"""The run statistics behind /metrics (projections/run_stats.py, issue 15): runs by workflow and outcome, the
histograms, and what they need of live actions and instances.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stats_run_outcomes",
        sa.Column("workflow_id", sa.String(64), primary_key=True),
        sa.Column("outcome", sa.String(16), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "stats_histograms",
        sa.Column("metric", sa.String(60), primary_key=True),
        sa.Column("labels", sa.String(500), primary_key=True),
        sa.Column("buckets", sa.Text(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "stats_open_actions",
        sa.Column("action_id", sa.String(64), primary_key=True),
        sa.Column("engine", sa.String(200), nullable=True),
        sa.Column("action_type", sa.String(200), nullable=True),
        sa.Column("queued_time", sa.String(40), nullable=True),
        sa.Column("start_time", sa.String(40), nullable=True),
    )
    op.create_table(
        "stats_open_instances",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("workflow_id", sa.String(64), nullable=False),
        sa.Column("queued_time", sa.String(40), nullable=True),
        sa.Column("started", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    for table in ("stats_open_instances", "stats_open_actions", "stats_histograms", "stats_run_outcomes"):
        op.drop_table(table)
