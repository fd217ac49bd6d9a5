"""services/filters.py against real read-model tables: every assertion runs on SQLite and on PostgreSQL.

The table is projections.entities.entity_table(..., "action"); ten rows cover numbers stored as JSON
numbers, stray strings in numeric fields, arrays of strings and of objects (and a lone object where the
schema says array), nested arrays, booleans, nulls and missing fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from bench.harness import pg
from events.database import create_engine
from projections.entities import entity_table
from projections.filters import FilterError, filter_clause, order_clause, parse_filters, parse_order_by, path_type
from tests.support.stores import BACKENDS

# Two "engines" whose action schemas both apply, as for GET /action (per-schema results are merged).
SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "state": {"type": "string"},
            "order_idx": {"type": ["number", "null"]},
            "progress": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "first_in_workflow": {"type": "boolean"},
            "args": {
                "type": "object",
                "properties": {"dataset_id": {"type": "string"}, "batch_size": {"type": "integer"}},
            },
        },
    },
    {
        "type": "object",
        "properties": {
            "columns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "data_format": {"type": "object", "properties": {"file_format": {"type": "string"}}},
        },
    },
]

MALICIOUS = "';DROP/**/TABLE/**/rm_action;--"


def _day(day: int, hour: int = 0, minute: int = 0, tz: timezone = UTC) -> datetime:
    return datetime(2024, 1, day, hour, minute, tzinfo=tz)


ROWS: list[dict[str, Any]] = [
    {"id": "r01", "created": _day(1), "data": {
        "name": "load_orders", "state": "COMPLETED", "order_idx": 1, "progress": 1.0, "tags": ["foo", "bar"],
        "args": {"dataset_id": "DS1", "batch_size": 100}, "columns": [{"name": "a"}, {"name": "b"}],
        "first_in_workflow": True}},
    {"id": "r02", "created": _day(2), "data": {
        "name": "Load_Customers", "state": "RUNNING", "order_idx": 2, "progress": 0.5, "tags": ["bar"],
        "args": {"dataset_id": "DS2", "batch_size": 20}, "columns": [{"name": "c", "tags": ["pii", "x"]}],
        "first_in_workflow": False}},
    {"id": "r03", "created": _day(3), "data": {
        "name": "copy orders", "state": "QUEUED", "order_idx": 9, "progress": 0.25, "tags": [],
        "args": {"dataset_id": "DS1"}, "columns": [], "extra": {"thing": 5}}},
    # 12:30 at +02:00 is 10:30 UTC: filters must compare instants, not the text the client sent.
    {"id": "r04", "created": _day(4, 12, 30, timezone(timedelta(hours=2))), "data": {
        "name": "export", "state": "FAILED", "order_idx": 10, "progress": 0, "tags": ["foo"], "args": {}}},
    {"id": "r05", "created": _day(5), "data": {
        "name": "dedupe", "state": "HAS_NEVER_RUN", "order_idx": None, "args": {"dataset_id": None}}},
    {"id": "r06", "created": _day(6), "data": {
        "name": "vacuum", "state": "COMPLETED", "order_idx": 100, "progress": 0.75, "tags": ["FOO"],
        "args": {"dataset_id": "ds1"},
        "columns": [{"name": "b", "tags": ["y"]}, {"name": "d", "tags": ["pii"]}]}},
    {"id": "r07", "created": _day(7), "data": {
        "name": "analyze", "order_idx": 2.5, "tags": ["baz", "foo"], "args": {"batch_size": "lots"},
        "columns": [{"name": None}, {"other": 1}]}},
    # `columns` is a lone object here although the schema says array: read laxly, as one element.
    {"id": "r08", "created": _day(8), "data": {
        "name": "Malicious", "state": MALICIOUS, "order_idx": 3, "tags": ["x"], "columns": {"name": "b"}}},
    {"id": "r09", "created": _day(9), "data": {
        "name": "tiny", "state": "COMPLETED", "order_idx": 0.5, "progress": "n/a", "tags": ["foo", "foo"],
        "args": {"dataset_id": "DS10"}}},
    {"id": "r10", "created": _day(10), "data": {
        "name": "zeta", "state": "PAUSED", "order_idx": -1, "tags": None, "args": None,
        "data_format": {"file_format": "PARQUET"}}},
]
ALL = [row["id"] for row in ROWS]


def _but(*excluded: str) -> list[str]:
    return [i for i in ALL if i not in excluded]


@dataclass
class Db:
    engine: sa.Engine
    table: sa.Table
    dialect: str

    def ids(self, filters: list[str], order_by: list[str] | None = None) -> list[str]:
        """The ids the filters select: sorted when unordered, else in the query's order (the clauses built as
        GET /action builds them, the id as last tie-breaker as the entity reader's page adds it)."""
        where = [filter_clause(self.table, f, path_type(SCHEMAS, f.key), self.dialect)
                 for f in parse_filters(json.dumps(filters))]
        order = [order_clause(self.table, key, direction, path_type(SCHEMAS, key), self.dialect)
                 for key, direction in parse_order_by(json.dumps(order_by or []))]
        query = sa.select(self.table.c.id).where(*where).order_by(*order, *([self.table.c.id] if order else []))
        with self.engine.connect() as conn:
            found = list(conn.execute(query).scalars())
        return found if order_by else sorted(found)


def _load(url: str) -> tuple[sa.Engine, sa.Table]:
    engine = create_engine(url)
    metadata = sa.MetaData()
    table = entity_table(metadata, "action")
    metadata.create_all(engine)
    rows = [
        {"id": r["id"], "version": 1, "created": r["created"], "updated": r["created"] + timedelta(hours=1),
         "state": r["data"].get("state"), "name": r["data"]["name"], "data": r["data"]}
        for r in ROWS
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    return engine, table


def _create_pg_database(server: str) -> tuple[str, str]:
    """A fresh database whose default collation is a natural-language one (ICU en-US, where "a" < "B"),
    so the byte-order assertions prove the filters ask for it rather than inherit a C-locale server's."""
    name = pg.unique_database_name("dart_filters")
    with pg.connect(server) as conn:
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
                        " LOCALE 'C.UTF-8'").format(sql.Identifier(name))
            )
        except psycopg.Error:  # a server without ICU (or older than 15): its default collation will do
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, pg.database_url(server, name)


# Module-scoped, not conftest's per-test ``db_url``: one table of rows serves every case, and the PostgreSQL
# database is created with a natural-language collation (see _create_pg_database).
@pytest.fixture(scope="module", params=BACKENDS)
def db(request, tmp_path_factory) -> Iterator[Db]:
    if request.param == "sqlite":
        engine, table = _load(f"sqlite:///{tmp_path_factory.mktemp('filters') / 'rm.db'}")
        yield Db(engine, table, "sqlite")
        engine.dispose()
        return
    server = pg.server_url_from_env()
    if server is None:
        pytest.skip(pg.SKIP_REASON)
    name, url = _create_pg_database(server)
    try:
        engine, table = _load(url)
        yield Db(engine, table, "postgresql")
        engine.dispose()
    finally:
        pg.drop_database(server, name)


CASES = [
    # equality and its complement (which matches NULL / missing: r07 has no state)
    (["state = COMPLETED"], ["r01", "r06", "r09"]),
    (["state=COMPLETED"], ["r01", "r06", "r09"]),
    (["state != COMPLETED"], ["r02", "r03", "r04", "r05", "r07", "r08", "r10"]),
    (["state = completed"], []),
    (["name = copy"], []),
    # numeric paths compare as numbers: text would put "10" and "100" before "9"
    (["order_idx > 9"], ["r04", "r06"]),
    (["order_idx >= 9"], ["r03", "r04", "r06"]),
    (["order_idx < 1"], ["r09", "r10"]),
    (["order_idx <= 2"], ["r01", "r02", "r09", "r10"]),
    (["order_idx = 2.5"], ["r07"]),
    (["order_idx = 10.0"], ["r04"]),
    (["order_idx != 2"], _but("r02")),
    (["order_idx IN 1,10,100"], ["r01", "r04", "r06"]),
    (["order_idx > -5", "order_idx < 2"], ["r01", "r09", "r10"]),
    # a stray string in a numeric field does not match and does not break the query
    (["args.batch_size > 50"], ["r01"]),
    (["args.batch_size != 100"], _but("r01")),
    (["progress >= 0.5"], ["r01", "r02", "r06"]),
    # text ranges are byte-ordered on both databases
    (["name < b"], ["r02", "r07", "r08"]),
    (["name >= tiny"], ["r06", "r09", "r10"]),
    # arrays: any element matches; the negation means no element does
    (["tags = foo"], ["r01", "r04", "r07", "r09"]),
    (["tags != foo"], ["r02", "r03", "r05", "r06", "r08", "r10"]),
    (["tags LIKE fo%"], ["r01", "r04", "r06", "r07", "r09"]),
    (["tags NOT_LIKE fo%"], ["r02", "r03", "r05", "r08", "r10"]),
    (["tags IN baz,x"], ["r07", "r08"]),
    (["tags ~ BZ"], ["r07"]),
    (["columns.name = b"], ["r01", "r06", "r08"]),
    (["columns.name IN a,c"], ["r01", "r02"]),
    (["columns.name != b"], _but("r01", "r06", "r08")),
    (["columns.tags = pii"], ["r02", "r06"]),
    (["columns.tags LIKE P%"], ["r02", "r06"]),
    # dot-paths into objects
    (["args.dataset_id = DS1"], ["r01", "r03"]),
    (["args.dataset_id LIKE ds1"], ["r01", "r03", "r06"]),
    (["args.dataset_id LIKE DS1%"], ["r01", "r03", "r06", "r09"]),
    (["args.dataset_id NOT_LIKE ds1%"], ["r02", "r04", "r05", "r07", "r08", "r10"]),
    (["data_format.file_format = PARQUET"], ["r10"]),
    # a path no schema knows compares as text, numbers included
    (["extra.thing = 5"], ["r03"]),
    (["extra.thing > 10"], ["r03"]),
    # fuzzy search and LIKE are case-insensitive
    (["name ~ lo_ord"], ["r01"]),
    (["name ~ copy-ord"], ["r03"]),
    (["name LIKE load%"], ["r01", "r02"]),
    (["name NOT_LIKE %o%"], ["r05", "r06", "r07", "r09", "r10"]),
    # booleans
    (["first_in_workflow = true"], ["r01"]),
    (["first_in_workflow = FALSE"], ["r02"]),
    (["first_in_workflow != true"], _but("r01")),
    # columns
    (["id = r05"], ["r05"]),
    (["id IN r01,r03,nope"], ["r01", "r03"]),
    (["id > r08"], ["r09", "r10"]),
    (["id LIKE R1%"], ["r10"]),
    (["created >= 2024-01-09"], ["r09", "r10"]),
    (["created < 2024-01-04T11:00:00+00:00"], ["r01", "r02", "r03", "r04"]),
    (["created < 2024-01-04T10:30:00Z"], ["r01", "r02", "r03"]),
    (["created = 2024-01-04T10:30:00+00:00"], ["r04"]),
    (["created = 2024-01-04T12:30:00+02:00"], ["r04"]),
    (["created IN 2024-01-01T00:00:00Z,2024-01-02T00:00:00+00:00"], ["r01", "r02"]),
    (["updated > 2024-01-09T00:30:00"], ["r09", "r10"]),
    (["updated != 2024-01-01T01:00:00Z"], _but("r01")),
    # several filters are AND-ed
    (["state = COMPLETED", "tags = foo"], ["r01", "r09"]),
    # a hostile value is just a value
    ([f"state = {MALICIOUS}"], ["r08"]),
    ([f"name LIKE {MALICIOUS}"], []),
    ([f"tags IN {MALICIOUS},x"], ["r08"]),
]


@pytest.mark.parametrize(("filters", "expected"), CASES, ids=[" & ".join(c[0]) for c in CASES])
def test_filter_selects(db: Db, filters: list[str], expected: list[str]) -> None:
    assert db.ids(filters) == expected


ORDERS = [
    (["order_idx ASC"], ["r10", "r09", "r01", "r02", "r07", "r08", "r03", "r04", "r06", "r05"]),
    (["order_idx DESC"], ["r06", "r04", "r03", "r08", "r07", "r02", "r01", "r09", "r10", "r05"]),
    # non-numbers and missing values sort last, then the id tie-breaker applies
    (["progress desc"], ["r01", "r06", "r02", "r03", "r04", "r05", "r07", "r08", "r09", "r10"]),
    # byte order: upper case first, whatever the database's locale
    (["name"], ["r02", "r08", "r07", "r03", "r05", "r04", "r01", "r09", "r06", "r10"]),
    # the hostile state starts with a quote, below every letter; r07 has no state at all
    (["state DESC", "order_idx DESC"],
     ["r02", "r03", "r10", "r05", "r04", "r06", "r01", "r09", "r08", "r07"]),
    (["created DESC"], ALL[::-1]),
    (["args.dataset_id ASC", "id DESC"],
     ["r03", "r01", "r09", "r02", "r06", "r10", "r08", "r07", "r05", "r04"]),
]


@pytest.mark.parametrize(("order_by", "expected"), ORDERS, ids=[", ".join(o[0]) for o in ORDERS])
def test_order_by(db: Db, order_by: list[str], expected: list[str]) -> None:
    assert db.ids([], order_by) == expected


def test_order_and_filter_together(db: Db) -> None:
    assert db.ids(["tags = foo"], ["order_idx DESC"]) == ["r04", "r07", "r01", "r09"]


@pytest.mark.parametrize(
    ("filters", "order_by", "message"),
    [
        (["order_idx > abc"], [], '"abc" is not a number'),
        (["order_idx IN 1,x"], [], '"x" is not a number'),
        (["progress = NaN"], [], "is not a number"),
        (["created > yesterday"], [], "not an ISO 8601"),
        (["created LIKE 2024%"], [], "LIKE cannot be used on created"),
        (["first_in_workflow = maybe"], [], "not true or false"),
        ([], ["tags ASC"], 'cannot order by "tags"'),
    ],
)
def test_bad_values_are_filter_errors(db: Db, filters: list[str], order_by: list[str], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        db.ids(filters, order_by)


def test_hostile_values_leave_the_table_intact(db: Db) -> None:
    db.ids([f"args.dataset_id = {MALICIOUS}", f"name ~ {MALICIOUS}", f"order_idx != {len(ALL)}"])
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.table)).scalar() == len(ALL)
