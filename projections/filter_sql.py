"""Dialect-specific SQL for reading values out of a read-model table's JSON ``data`` column.

services/filters.py owns the list-query semantics (parsing, typing, operators); this module only knows how
to turn a dot-path into a typed SQL value on PostgreSQL (jsonb) and SQLite (JSON text), either for a scalar
path or for every element reached through the path's arrays. Path segments arrive already validated
(``[A-Za-z0-9_-]``) and still travel as bound parameters, never spliced into SQL.

Paths through arrays are *lax*: an array segment holding a non-array value is treated as a one-element
array. Several schemas may disagree (one engine's ``args.x`` is a list, another's a string); lax reading
keeps the filter true to each row's actual shape, like PostgreSQL's lax SQL/JSON path mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, JSONPATH

Kind = Literal["text", "numeric", "boolean"]
Predicate = Callable[[sa.ColumnElement[Any]], sa.ColumnElement[bool]]

# `#>> '{}'` turns a jsonb value into text (strings unquoted, JSON null into SQL NULL). A constant, not input.
_PG_WHOLE: sa.ColumnElement[Any] = sa.literal_column("'{}'")


def text_order(expr: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """Byte-order text comparison on PostgreSQL, as SQLite's default BINARY collation does, so that ranges
    and ORDER BY give the same answer whatever the database's locale."""
    return expr.collate("C") if dialect == "postgresql" else expr


def scalar_value(
    data: sa.ColumnElement[Any], segments: Sequence[str], kind: Kind, dialect: str
) -> sa.ColumnElement[Any]:
    """The value at a path with no arrays in it: text (booleans as ``true``/``false``), or numeric, where
    anything that is not a JSON number reads as NULL (so it matches no comparison and never fails a cast)."""
    if dialect == "postgresql":
        path = sa.literal(list(segments), ARRAY(sa.Text()))
        if kind == "numeric":
            return _pg_numeric(data.op("#>", return_type=JSONB)(path))
        return data.op("#>>", return_type=sa.Text)(path)
    json_path = sqlite_path(segments)
    return _sqlite_typed(sa.func.json_extract(data, json_path), sa.func.json_type(data, json_path), kind)


def any_element(
    data: sa.ColumnElement[Any],
    segments: Sequence[str],
    arrays: Sequence[bool],
    kind: Kind,
    dialect: str,
    predicate: Predicate,
) -> sa.ColumnElement[bool]:
    """EXISTS an element reached through the path's arrays (``arrays[i]``: segment i holds an array) for
    which ``predicate`` holds. A correlated EXISTS rather than a join, so a row matches once however many
    of its elements do."""
    if dialect == "postgresql":
        return _pg_any(data, segments, arrays, kind, predicate)
    return _sqlite_any(data, segments, arrays, kind, predicate)


# ---------------------------------------------------------------------------------------------- PostgreSQL
def _pg_numeric(node: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    # The cast only runs on JSON numbers: a stray string in a numeric field reads as NULL instead of
    # aborting the whole query with "invalid input syntax for type numeric".
    text = node.op("#>>", return_type=sa.Text)(_PG_WHOLE)
    return sa.case((sa.func.jsonb_typeof(node) == "number", sa.cast(text, sa.Numeric())), else_=None)


def _pg_any(
    data: sa.ColumnElement[Any],
    segments: Sequence[str],
    arrays: Sequence[bool],
    kind: Kind,
    predicate: Predicate,
) -> sa.ColumnElement[bool]:
    # One lax SQL/JSON path walks every array level at once: `[*]` unwraps arrays (and wraps a lone value),
    # and a missing key or a key on a non-object yields nothing instead of an error.
    steps = ["$"]
    for segment, is_array in zip(segments, arrays):
        steps.append(f'."{segment}"' + ("[*]" if is_array else ""))
    path = sa.cast(sa.literal("lax " + "".join(steps)), JSONPATH)
    element = sa.func.jsonb_path_query(data, path, type_=JSONB).column_valued()
    if kind == "numeric":
        value = _pg_numeric(element)
    else:
        value = element.op("#>>", return_type=sa.Text)(_PG_WHOLE)
    # The FROM (jsonb_path_query(...) AS anon) comes from the element column itself.
    return sa.exists(sa.select(sa.literal(1)).where(predicate(value)))


# ------------------------------------------------------------------------------------------------- SQLite
def sqlite_path(segments: Sequence[str]) -> str:
    return "$" + "".join(f'."{segment}"' for segment in segments)


def _sqlite_typed(
    value: sa.ColumnElement[Any], json_type: sa.ColumnElement[Any], kind: Kind
) -> sa.ColumnElement[Any]:
    if kind == "numeric":
        # json_extract already yields SQL numbers for JSON numbers; anything else must not compare.
        return sa.case((json_type.in_(["integer", "real"]), value), else_=None)
    # json_extract yields 1/0 for JSON booleans: spell them as PostgreSQL's `#>>` does, so `= true` and
    # text comparisons agree across dialects; numbers become their text, like `#>>` gives.
    return sa.case(
        (json_type == "true", sa.literal("true")),
        (json_type == "false", sa.literal("false")),
        else_=sa.cast(value, sa.Text()),
    )


def _sqlite_any(
    data: sa.ColumnElement[Any],
    segments: Sequence[str],
    arrays: Sequence[bool],
    kind: Kind,
    predicate: Predicate,
) -> sa.ColumnElement[bool]:
    # One json_each per array level, each reading from the previous level's element (SQLite lets a
    # table-valued function's arguments refer to tables earlier in the FROM list).
    doc: sa.ColumnElement[Any] = data
    froms: list[Any] = []
    pending: list[str] = []
    element: Any = None
    for segment, is_array in zip(segments, arrays):
        pending.append(segment)
        if not is_array:
            continue
        path = sqlite_path(pending)
        # json_array(json_extract(...)) wraps a lone value (objects stay objects) for lax reading; a
        # missing value becomes [null], which no positive predicate matches.
        source = sa.case(
            (sa.func.json_type(doc, path) == "array", sa.func.json_extract(doc, path)),
            else_=sa.func.json_array(sa.func.json_extract(doc, path)),
        )
        element = sa.func.json_each(source).table_valued("value", "type")
        froms.append(element)
        # json_each hands out strings unquoted: only containers may be parsed as JSON again.
        doc = sa.case((element.c.type.in_(["object", "array"]), element.c.value), else_=None)
        pending = []
    if pending:
        path = sqlite_path(pending)
        value = _sqlite_typed(sa.func.json_extract(doc, path), sa.func.json_type(doc, path), kind)
    else:
        value = _sqlite_typed(element.c.value, element.c.type, kind)
    # Chained with JOIN ... ON 1: each level's arguments already tie it to the previous one, and a bare
    # comma list would make SQLAlchemy warn about a cartesian product.
    source = froms[0]
    for inner in froms[1:]:
        source = source.join(inner, sa.true())
    return sa.exists(sa.select(sa.literal(1)).select_from(source).where(predicate(value)))
