"""Throw-away PostgreSQL databases for tests and benchmarks.

Every helper takes the *server* URL (``DART_TEST_DATABASE_URL``, e.g.
``postgresql://postgres@127.0.0.1:5432/postgres``): a database that the test user can connect to and that is
only used to run ``CREATE DATABASE`` / ``DROP DATABASE``. Tests then work in their own fresh database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

ENV_VAR = "DART_TEST_DATABASE_URL"
DATABASE_PREFIX = "dart_test"
SKIP_REASON = (
    f"{ENV_VAR} is not set: PostgreSQL tests need a server URL such as "
    "postgresql://postgres@127.0.0.1:5432/postgres"
)


def server_url_from_env() -> str | None:
    """The server URL the tests may create databases on, or None when PostgreSQL tests are to be skipped."""
    url = os.environ.get(ENV_VAR, "").strip()
    return url or None


def libpq_url(url: str) -> str:
    """A URL psycopg/libpq accepts: SQLAlchemy driver suffixes (``postgresql+psycopg://``) removed."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(server_url: str, name: str) -> str:
    """``server_url`` pointing at database ``name`` instead (same host, port, user and options)."""
    return make_url(libpq_url(server_url)).set(database=name).render_as_string(hide_password=False)


def connect(url: str, autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(libpq_url(url), autocommit=autocommit)


def unique_database_name(prefix: str = DATABASE_PREFIX) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def create_database(server_url: str, name: str | None = None) -> tuple[str, str]:
    """Create a fresh, empty database on the server; returns (name, URL of the new database)."""
    name = name or unique_database_name()
    with connect(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, database_url(server_url, name)


def terminate_connections(server_url: str, name: str) -> int:
    """Close every other session connected to database ``name``; returns how many were terminated."""
    with connect(server_url) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, terminating its connections first."""
    terminate_connections(server_url, name)
    with connect(server_url) as conn:
        force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))


@contextmanager
def temporary_database(server_url: str, name: str | None = None) -> Iterator[str]:
    """A fresh database for the duration of the block; yields its URL and drops it afterwards."""
    name, url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)
