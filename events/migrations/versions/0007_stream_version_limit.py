"""dart_stream_version() reads the stream's last version with ORDER BY ... LIMIT 1.

A session that first ran the max() form while the log was small cached a plan that read every entry of
the stream until the next ANALYZE, so appends got slower as streams grew (measured: 216 -> 381 us of
server CPU per append, inside the global lock). The LIMIT 1 form stays one index probe.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION dart_stream_version(p_stream text, p_expected integer) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    current integer;
BEGIN
    SELECT stream_version INTO current FROM events WHERE stream_id = p_stream
        ORDER BY stream_version DESC LIMIT 1;
    current := COALESCE(current, 0);
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
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    pass  # the max() form of 0001 is equivalent in result; nothing to undo
