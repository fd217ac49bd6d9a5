"""An index over (datastore_id, state) of the action read model: the next-action and slot decisions read a
datastore's waiting and in-flight actions only, and with this index that costs the same however many
finished actions the datastore has.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_rm_action_datastore_id_state", "rm_action", ["datastore_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_rm_action_datastore_id_state", table_name="rm_action")
