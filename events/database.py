"""Opening a store from a URL: the engine, the migrations alembic owns, and the implementation to use."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from events.postgres import PostgresEventStore
from events.registry import EventRegistry
from events.sqlite import SqliteEventStore, create_sqlite_engine
from events.store import EventStore

MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def create_engine(url: str) -> sa.Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return create_sqlite_engine(url)
    return sa.create_engine(url, pool_size=16, max_overflow=32, pool_pre_ping=False)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Create or upgrade every table (the log, checkpoints, read models) to ``revision``."""
    config = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes starting at once must not both run the same migration.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7061)")
        else:
            # Our SQLite connections leave transactions to us: make the migration one transaction.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def open_store(url: str, registry: EventRegistry, migrate: bool = True) -> EventStore:
    engine = create_engine(url)
    if migrate:
        upgrade(engine)
    if engine.dialect.name == "postgresql":
        return PostgresEventStore(engine, registry)
    if engine.dialect.name == "sqlite":
        return SqliteEventStore(engine, registry)
    raise ValueError(f"unsupported database {engine.dialect.name!r} in {url!r}: use postgresql:// or sqlite://")
