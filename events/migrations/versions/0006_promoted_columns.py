"""Indexed copies of the data fields that decisions and list filters look up by value (the datastore,
workflow and instance of an action, the workflow of an instance, a trigger's type), filled from data.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen here on purpose: a migration never follows later changes to the code.
PROMOTED = {
    "action": ("datastore_id", "workflow_id", "workflow_instance_id"),
    "workflow_instance": ("workflow_id",),
    "trigger": ("trigger_type_name",),
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for category, fields in PROMOTED.items():
        table = f"rm_{category}"
        with op.batch_alter_table(table) as batch:
            for field in fields:
                batch.add_column(sa.Column(field, sa.String(64), nullable=True))
        for field in fields:
            value = (f"data ->> '{field}'" if postgres
                     else f"CASE WHEN json_type(data, '$.{field}') = 'text' THEN json_extract(data, '$.{field}') END")
            guard = f" WHERE jsonb_typeof(data -> '{field}') = 'string'" if postgres else ""
            op.execute(f'UPDATE "{table}" SET "{field}" = {value}{guard}')
            op.create_index(f"ix_{table}_{field}", table, [field])


def downgrade() -> None:
    for category, fields in PROMOTED.items():
        table = f"rm_{category}"
        for field in fields:
            op.drop_index(f"ix_{table}_{field}", table_name=table)
        with op.batch_alter_table(table) as batch:
            for field in fields:
                batch.drop_column(field)
