"""services/filters.py without a database: parsing filters and order_by, typing paths from JSON schemas,
and the checks filter_clause makes before any SQL runs."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from projections.entities import entity_table
from projections.filters import (
    OPERATORS,
    Filter,
    FilterError,
    PathType,
    filter_clause,
    order_clause,
    parse_filter,
    parse_filters,
    parse_order_by,
    path_type,
)

DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}


def _filters(*items: str) -> list[Filter]:
    return parse_filters(json.dumps(list(items)))


# ----------------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("template", ["k {op} v", "k{op}v", "  k   {op}   v  ", "k {op}v", "k{op} v"])
def test_every_operator_with_any_spacing(op: str, template: str) -> None:
    # Word operators glued to key or value are read too: the original's regex makes spaces optional.
    assert _filters(template.format(op=op)) == [Filter("k", op, "v")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("order_idx<=5", Filter("order_idx", "<=", "5")),
        ("order_idx>=5", Filter("order_idx", ">=", "5")),
        ("state!=DONE", Filter("state", "!=", "DONE")),
        ("a <= -1.5", Filter("a", "<=", "-1.5")),
        ("x = =y", Filter("x", "=", "=y")),  # the value is everything after the operator
        ("args.dataset_id = ABC", Filter("args.dataset_id", "=", "ABC")),
        ("data_format.file_format=PARQUET", Filter("data_format.file_format", "=", "PARQUET")),
        ("state IN A,B,,C", Filter("state", "IN", "A,B,,C")),
        ("name NOT_LIKE %tmp%", Filter("name", "NOT_LIKE", "%tmp%")),
        ("name LIKE%tmp%", Filter("name", "LIKE", "%tmp%")),
        ("name ~ my-action", Filter("name", "~", "my-action")),
        # a word operator inside a glued key does not split it when a symbol operator follows
        ("fooINbar=5", Filter("fooINbar", "=", "5")),
        ("stateIN A,B", Filter("state", "IN", "A,B")),
        ("engine_name = emr", Filter("engine_name", "=", "emr")),
    ],
)
def test_parse_filter(text: str, expected: Filter) -> None:
    assert parse_filter(text) == expected


def test_filter_str_is_key_op_value() -> None:
    assert str(Filter("a.b", "IN", "1,2")) == "a.b IN 1,2"


@pytest.mark.parametrize("raw", [None, "", "   ", "[]"])
def test_no_filters(raw: str | None) -> None:
    assert parse_filters(raw) == []


def test_several_filters_keep_their_order() -> None:
    assert parse_filters('["b = 1", "a = 2"]') == [Filter("b", "=", "1"), Filter("a", "=", "2")]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("state = ACTIVE", "filters must be a JSON array of strings"),
        ('{"state": "ACTIVE"}', "filters must be a JSON array of strings"),
        ('"state = ACTIVE"', "filters must be a JSON array of strings"),
        ("[1]", "filters must be a JSON array of strings"),
        ('[["state = A"]]', "filters must be a JSON array of strings"),
        ("null", "filters must be a JSON array of strings"),
        ('["state == ACTIVE"]', 'could not parse filter: "state == ACTIVE"'),
        ('["state ACTIVE"]', 'could not parse filter: "state ACTIVE"'),
        ('["state = two words"]', 'could not parse filter: "state = two words"'),
        ('["state ="]', 'could not parse filter: "state ="'),
        ('["= ACTIVE"]', 'could not parse filter: "= ACTIVE"'),
        ('[""]', 'could not parse filter: ""'),
        ('["ok = 1", "bad"]', 'could not parse filter: "bad"'),
        ("[\"x'y = 1\"]", "invalid key \"x'y\""),
        ('["a..b = 1"]', 'invalid key "a..b"'),
        ('[".a = 1"]', 'invalid key ".a"'),
        ('["a$b = 1"]', 'invalid key "a$b"'),
    ],
)
def test_malformed_filters(raw: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filters(raw)
    assert message in str(caught.value)


def test_filter_error_is_a_value_error() -> None:
    assert issubclass(FilterError, ValueError)


# ---------------------------------------------------------------------------------------------- order_by
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, []),
        ("", []),
        ('["updated DESC"]', [("updated", "DESC")]),
        ('["order_idx asc", "name Desc"]', [("order_idx", "ASC"), ("name", "DESC")]),
        ('["  args.x   DESC "]', [("args.x", "DESC")]),
        ('["name"]', [("name", "ASC")]),
    ],
)
def test_parse_order_by(raw: str | None, expected: list[tuple[str, str]]) -> None:
    assert parse_order_by(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('["name UP"]', 'unknown order_by direction "UP" in "name UP"'),
        ('["name ASC extra"]', 'could not parse order_by: "name ASC extra"'),
        ('[""]', 'could not parse order_by: ""'),
        ('["na;me ASC"]', 'invalid key "na;me"'),
        ("name ASC", "order_by must be a JSON array of strings"),
        ("[true]", "order_by must be a JSON array of strings"),
    ],
)
def test_malformed_order_by(raw: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_order_by(raw)
    assert message in str(caught.value)


# ------------------------------------------------------------------------------------------- path typing
ACTION = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "order_idx": {"type": ["number", "null"]},
        "completed_runs": {"type": "integer"},
        "first_in_workflow": {"type": ["boolean", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "args": {
            "type": "object",
            "properties": {
                "dataset_id": {"type": "string"},
                "limits": {"properties": {"rows": {"type": "integer"}}},  # object inferred from properties
            },
        },
        "columns": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "length": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "extra_data": {"type": "object", "additionalProperties": {"type": "number"}},
        "mode": {"enum": [1, 2, 3]},
        "anything": {"type": "array"},
    },
}
OTHER_ENGINE = {
    "type": "object",
    "properties": {
        "args": {
            "type": "object",
            "properties": {"dataset_id": {"type": "integer"}, "files": {"type": "array"}},
        },
        "name": {"type": "boolean"},
        "options": {"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer"}}]},
    },
}


@pytest.mark.parametrize(
    ("schemas", "key", "expected"),
    [
        ([ACTION], "name", PathType("text", (False,))),
        ([ACTION], "order_idx", PathType("numeric", (False,))),
        ([ACTION], "completed_runs", PathType("numeric", (False,))),
        ([ACTION], "first_in_workflow", PathType("boolean", (False,))),
        ([ACTION], "tags", PathType("text", (True,))),
        ([ACTION], "args.dataset_id", PathType("text", (False, False))),
        ([ACTION], "args.limits.rows", PathType("numeric", (False, False, False))),
        ([ACTION], "columns.name", PathType("text", (True, False))),
        ([ACTION], "columns.length", PathType("numeric", (True, False))),
        ([ACTION], "columns.tags", PathType("text", (True, True))),
        ([ACTION], "columns", PathType("text", (True,))),  # an array of objects compares as text
        ([ACTION], "extra_data.cluster_size", PathType("numeric", (False, False))),
        ([ACTION], "mode", PathType("numeric", (False,))),
        ([ACTION], "anything", PathType("text", (True,))),  # no items schema: still an array
        # unknown paths: text, no arrays
        ([ACTION], "nope", PathType()),
        ([ACTION], "args.nope", PathType()),
        ([ACTION], "name.deeper", PathType()),
        ([], "name", PathType()),
        # several schemas: numeric if numeric anywhere, boolean only if boolean everywhere, arrays OR-ed
        ([ACTION, OTHER_ENGINE], "args.dataset_id", PathType("numeric", (False, False))),
        ([ACTION, OTHER_ENGINE], "name", PathType("text", (False,))),
        ([OTHER_ENGINE], "name", PathType("boolean", (False,))),
        ([ACTION, OTHER_ENGINE], "args.files", PathType("text", (False, True))),
        ([OTHER_ENGINE], "options", PathType("numeric", (True,))),  # through anyOf
    ],
)
def test_path_type(schemas: list[dict], key: str, expected: PathType) -> None:
    assert path_type(schemas, key) == expected


def test_path_type_only_marks_the_array_segments() -> None:
    typed = path_type([ACTION], "columns.name")
    assert typed.through_array and typed.arrays == (True, False)
    assert not path_type([ACTION], "args.dataset_id").through_array


# ----------------------------------------------------------------------------------- clauses without a db
@pytest.fixture
def table() -> sa.Table:
    return entity_table(sa.MetaData(), "action")


NUMERIC = PathType("numeric", (False,))


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("text", "ptype", "message"),
    [
        ("order_idx > abc", NUMERIC, 'filter "order_idx > abc": "abc" is not a number'),
        ("order_idx IN 1,,2", NUMERIC, '"" is not a number'),
        ("order_idx = Infinity", NUMERIC, '"Infinity" is not a number'),
        ("created > 2024-13-01", None, '"2024-13-01" is not an ISO 8601 date/time'),
        ("updated IN 2024-01-01,soon", None, '"soon" is not an ISO 8601'),
        ("created ~ 2024", None, "~ cannot be used on created"),
        ("flag = yes", PathType("boolean", (False,)), '"yes" is not true or false'),
    ],
)
def test_bad_values_are_refused_before_sql(
    table: sa.Table, dialect: str, text: str, ptype: PathType | None, message: str
) -> None:
    with pytest.raises(FilterError) as caught:
        filter_clause(table, parse_filter(text), ptype, dialect)
    assert message in str(caught.value)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("text", "ptype"),
    [
        ("state = x'||'1", None),
        ("args.x LIKE %';DROP/**/TABLE/**/t;--", None),
        ("tags IN a,')--", PathType("text", (True,))),
        ("columns.name ~ 'or'1'='1", PathType("text", (True, False))),
        ("id != ')--", None),
    ],
)
def test_values_are_bound_not_spliced(
    table: sa.Table, dialect: str, text: str, ptype: PathType | None
) -> None:
    f = parse_filter(text)
    sql = str(filter_clause(table, f, ptype, dialect).compile(dialect=DIALECTS[dialect]))
    assert "'" not in sql.replace("'{}'", "")  # the only quoted literal is jsonb's whole-value path
    assert f.value not in sql


def test_order_clause_refuses_array_paths_and_bad_directions(table: sa.Table) -> None:
    with pytest.raises(FilterError, match='cannot order by "tags"'):
        order_clause(table, "tags", "ASC", PathType("text", (True,)), "sqlite")
    with pytest.raises(FilterError, match="unknown order_by direction"):
        order_clause(table, "name", "SIDEWAYS", None, "sqlite")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_order_clause_puts_nulls_last(table: sa.Table, dialect: str) -> None:
    sql = str(order_clause(table, "order_idx", "desc", NUMERIC, dialect).compile(dialect=DIALECTS[dialect]))
    assert sql.endswith("DESC NULLS LAST")




def test_columns_are_not_typed_from_schemas(table: sa.Table) -> None:
    wrong = PathType("numeric", (True,))  # what a schema may say of a data key of the same name
    dialect = DIALECTS["postgresql"]
    for f in _filters("id = x", "created > 2024-01-01"):
        typed = filter_clause(table, f, wrong, "postgresql").compile(dialect=dialect)
        assert str(typed) == str(filter_clause(table, f, None, "postgresql").compile(dialect=dialect))
        ordered = order_clause(table, f.key, "ASC", wrong, "postgresql").compile(dialect=dialect)
        assert str(ordered) == str(order_clause(table, f.key, "ASC", None, "postgresql").compile(dialect=dialect))
    data_key = str(filter_clause(table, _filters("progress > 1")[0], wrong, "postgresql").compile(dialect=dialect))
    assert "jsonb_path_query" in data_key and "NUMERIC" in data_key  # a data key does take the schema's type
