"""The subgraph definition read model (engines' stored UI recipes, reference §3.11).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(40), "sqlite")


def upgrade() -> None:
    name = "rm_subgraph_definition"
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


def downgrade() -> None:
    op.drop_table("rm_subgraph_definition")
