"""cluster_maintenance: rows past the retention days that ``dart.retention_policy`` names are deleted, then
the tables Redshift reports unsorted or with stale statistics are vacuumed and analyzed (outside a
transaction)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg

from engines.postgresql.hook import pg_cause, quote
from engines.sdk import ActionContext, ActionFailure, DartClient

log = logging.getLogger("dart.engine.redshift")

RETENTION_SQL = "SELECT schema_name, table_name, column_name, retention_days FROM dart.retention_policy"
VACUUM_RUNNING_SQL = "SELECT count(*) FROM svv_vacuum_progress WHERE time_remaining_estimate IS NOT NULL"
# svv_table_info's percentages: the original vacuumed past 10 % unsorted or stale, analyzed past 10 % stale.
VACUUM_SQL = (
    'SELECT DISTINCT "schema", "table" FROM svv_table_info WHERE unsorted > 10 OR stats_off > 10 '
    "ORDER BY 1, 2"
)
ANALYZE_SQL = 'SELECT DISTINCT "schema", "table" FROM svv_table_info WHERE stats_off > 10 ORDER BY 1, 2'


def retention_deletes(policies: list[tuple[Any, ...]]) -> list[str]:
    """One DELETE per policy: rows whose column is more than retention_days before today (the original's
    DATEDIFF(day, column, current_date) > days, spelled so PostgreSQL runs it too)."""
    return [
        f"DELETE FROM {quote(schema)}.{quote(table)} WHERE CAST({quote(column)} AS DATE) < CURRENT_DATE - "
        f"{int(days)}"
        for schema, table, column, days in policies
    ]


def cluster_maintenance(
    context: ActionContext, client: DartClient, connect: Callable[[ActionContext], psycopg.Connection[Any]]
) -> None:
    args = context.action_args
    with connect(context) as conn:
        try:
            if args.get("Retention_Policy", True):
                try:
                    policies = conn.execute(RETENTION_SQL).fetchall()
                except psycopg.errors.UndefinedTable as exc:
                    raise ActionFailure(
                        "Retention_Policy needs the table dart.retention_policy (schema_name, "
                        "table_name, column_name, retention_days)"
                    ) from exc
                with conn.transaction():
                    for statement in retention_deletes(policies):
                        conn.execute(statement)
                conn.commit()
            client.report_progress(context.action_id, 0.3)
            conn.autocommit = True  # VACUUM cannot run inside a transaction block
            if args.get("Vacuum", True):
                running = conn.execute(VACUUM_RUNNING_SQL).fetchone()
                if running and running[0]:
                    log.info("a vacuum is already running: skipped")
                else:
                    for schema, table in conn.execute(VACUUM_SQL).fetchall():
                        conn.execute(f"VACUUM {quote(schema)}.{quote(table)}")
            client.report_progress(context.action_id, 0.6)
            if args.get("Analyze", True):
                for schema, table in conn.execute(ANALYZE_SQL).fetchall():
                    conn.execute(f"ANALYZE {quote(schema)}.{quote(table)}")
        except psycopg.Error as exc:
            raise ActionFailure(f"SQL error: {pg_cause(exc)}") from exc
    client.report_progress(context.action_id, 1.0)
