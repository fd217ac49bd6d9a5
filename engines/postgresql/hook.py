"""The PostgreSQL hook: a connection from the datastore's options (the password only ever from the check-out
response), and the engine's errors in one line."""

from __future__ import annotations

from typing import Any

import psycopg

from engines.sdk import ActionContext, ActionFailure

DEFAULT_PORT = 5432
CONNECT_TIMEOUT = 15


def connection_args(datastore: dict[str, Any]) -> dict[str, Any]:
    """libpq keywords from the datastore envelope: its options, falling back to the host and port a
    start_datastore action may have patched onto the datastore."""
    data = datastore.get("data") or {}
    args = data.get("args") or {}
    host = args.get("host") or data.get("host")
    if not host:
        raise ActionFailure("the datastore names no host (set the host option)")
    found = {"host": host, "port": int(args.get("port") or data.get("port") or DEFAULT_PORT),
             "dbname": args.get("database") or "postgres", "user": args.get("user") or "postgres",
             "password": args.get("password"), "sslmode": args.get("sslmode") or "prefer",
             "connect_timeout": CONNECT_TIMEOUT, "application_name": "dart postgresql_engine"}
    return {k: v for k, v in found.items() if v is not None}


def schema_of(context: ActionContext) -> str:
    return str(context.datastore_args.get("schema") or "public")


def connect(params: dict[str, Any], schema: str | None = None,
            what: str = "PostgreSQL") -> psycopg.Connection[Any]:
    """A connection (not in autocommit) with ``schema`` first on the search path; ``what`` names the server in
    errors (the redshift engine connects here too)."""
    where = f"{params.get('user')}@{params.get('host')}:{params.get('port')}/{params.get('dbname')}"
    try:
        conn = psycopg.connect(**params)
    except psycopg.OperationalError as exc:
        raise ActionFailure(f"cannot connect to {what} {where}: {pg_cause(exc)}") from exc
    if schema:
        conn.execute("SELECT set_config('search_path', %s, false)", [f'"{schema}", public'])
        conn.commit()
    return conn


def pg_cause(exc: BaseException) -> str:
    """psycopg's message without libpq's prefixes and its LINE/caret lines: one line."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if primary:
        detail = getattr(diag, "message_detail", None)
        return f"{primary} ({detail})" if detail else str(primary)
    text = " ".join(str(exc).split())
    # libpq: 'connection failed: connection to server at "h", port p failed: FATAL: <the reason>'
    return text.rsplit(" FATAL: ", 1)[-1]


def quote(name: str) -> str:
    """A SQL identifier; dataset and table names are ``^[a-zA-Z0-9_]+$`` already, this guards the rest."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal (for COPY options, which take no parameters)."""
    return "'" + value.replace("'", "''") + "'"
