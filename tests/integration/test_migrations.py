"""Alembic owns every table: after the migrations, the projection tables (and the checkpoints) in the database
are exactly what the projection code defines, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from events.checkpoints import checkpoints
from events.database import create_engine, current_revision, head_revision, upgrade
from events.store import EventStore
from projections.catalog import all_projections
from projections.rebuild import rebuild_all
from services.commands.notifications import notifications_sent
from services.delivery.records import consumer_records
from tests.integration.projection_fixtures import ENTITY_TABLES, STATS_TABLE, Traffic

IGNORED_TABLES = {"events", "alembic_version"}  # the log is the store's, not a projection's


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def code_metadata() -> sa.MetaData:
    """Every projection's tables plus the checkpoints table, as the code defines them."""
    target = sa.MetaData()
    for projection in all_projections():
        for table in projection.tables.values():
            table.to_metadata(target)
    checkpoints.to_metadata(target)
    notifications_sent.to_metadata(target)
    consumer_records.to_metadata(target)
    return target


def schema_differences(engine: sa.Engine) -> list:
    target = code_metadata()

    def include_object(obj, name, type_, reflected, compare_to) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is None or table.name not in IGNORED_TABLES

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "compare_server_default": True, "include_object": include_object},
        )
        return compare_metadata(context, target)


def test_code_metadata_covers_every_projection_table() -> None:
    names = set(code_metadata().tables)
    assert names == {*ENTITY_TABLES, STATS_TABLE, "projection_checkpoints", "notifications_sent",
                     "consumer_records", "rm_subscription_element", "rm_subscription_listing",
                     "stats_run_outcomes", "stats_histograms", "stats_open_actions", "stats_open_instances"}


def test_migrated_database_matches_every_projections_tables(engine: sa.Engine) -> None:
    upgrade(engine)
    assert schema_differences(engine) == []
    tables = set(sa.inspect(engine).get_table_names())
    assert set(code_metadata().tables) <= tables


def test_upgrade_twice_is_a_no_op_and_lands_on_head(engine: sa.Engine) -> None:
    assert current_revision(engine) is None
    upgrade(engine)
    tables = sorted(sa.inspect(engine).get_table_names())
    upgrade(engine)
    assert sorted(sa.inspect(engine).get_table_names()) == tables
    assert head_revision() is not None
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_concurrent_upgrades_of_a_fresh_database_both_succeed(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(3)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(engine: sa.Engine) -> None:
        try:
            barrier.wait(10)
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert current_revision(engines[0]) == head_revision()
        assert schema_differences(engines[0]) == []
    finally:
        for e in engines:
            e.dispose()


def test_rebuilt_tables_still_match_the_migrated_schema(projected_store: EventStore) -> None:
    Traffic(projected_store, seed=21).run(200)
    rebuild_all(projected_store)  # every projection swaps a fresh table in for its live one
    assert schema_differences(projected_store.engine) == []
    inspector = sa.inspect(projected_store.engine)
    leftovers = [t for t in inspector.get_table_names() if t.endswith("__rebuild")]
    assert leftovers == []
