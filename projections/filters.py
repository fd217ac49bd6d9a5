"""List-query filters and ordering for the REST API, with the original dart's semantics (reference §6).

Owns: parsing the ``filters`` and ``order_by`` query values, typing a dot-path from the entity's JSON
schemas, and turning each filter / order key into a SQLAlchemy Core expression over a read-model table
(``rm_<entity>``, see projections/entities.py). Dialect-specific JSON access lives in services/filter_sql.py.

Semantics worth knowing:
- ``id``, ``created``, ``updated`` are columns; every other key is a dot-path inside ``data``.
- A numeric path (``integer``/``number`` in any schema) compares numerically; anything else as text.
- Through an array the filter matches when any element matches. The negated operators (``!=``,
  ``NOT_LIKE``) are the exact complement of their positive forms: they match NULL / missing values, and on an
  array path they match rows where *no* element matches.
- Every user value is a bound parameter; keys are restricted to ``[A-Za-z0-9_-]`` segments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from projections.filter_sql import Kind, any_element, scalar_value, text_order

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "IN", "LIKE", "NOT_LIKE", "~")
# Longer operators first so `<=` is not read as `<` nor `!=` as a key ending in `!`.
_SYMBOLIC = r"<=|>=|!=|=|<|>|~"
_WORDS = r"NOT_LIKE|LIKE|IN"
# The original's pattern: spaces around the operator optional, the value without whitespace.
_LOOSE = re.compile(rf"\s*(\S+?)\s*({_SYMBOLIC}|{_WORDS})\s*(\S+)\s*")
# Tried first: a word operator must stand between spaces, so `fooINbar=5` is `fooINbar = 5`, not
# `foo IN bar=5`. Anything it rejects still gets the original's reading.
_STRICT = re.compile(rf"\s*(\S+?)(?:\s*({_SYMBOLIC})\s*|\s+({_WORDS})\s+)(\S+)\s*")
_KEY = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
COLUMN_KEYS = ("id", "created", "updated")
_TIMESTAMP_KEYS = ("created", "updated")
# Also columns of rm_<entity> (indexed) holding data.state / data.name when those are strings.
_TEXT_COLUMN_KEYS = ("state", "name")
_NOT_DATA_COLUMNS = ("id", "version", "created", "updated", "data")
_MAX_EXPONENT = 300  # a numeric filter value's decimal exponent
MAX_IN_VALUES = 1000


class FilterError(ValueError):
    """A malformed filter or order_by: the message names the offending item and suits a 400 response."""


@dataclass(frozen=True)
class Filter:
    """One parsed filter; ``value`` is the raw text (IN values still comma-separated)."""

    key: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.value}"


@dataclass(frozen=True)
class PathType:
    """How to compare a data path: the leaf's kind, and per segment whether it holds an array."""

    kind: Kind = "text"
    arrays: tuple[bool, ...] = ()

    @property
    def through_array(self) -> bool:
        return any(self.arrays)


# -------------------------------------------------------------------------------------------------- parsing
def _json_string_list(raw: str | None, what: str) -> list[str]:
    if raw is None or not raw.strip():
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        raise FilterError(f"{what} must be a JSON array of strings, got: {raw!r}") from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise FilterError(f"{what} must be a JSON array of strings, got: {raw!r}")
    for item in items:
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # a "\ud800" escape: no database can hold or compare it
            raise FilterError(f"{what}: {item!r} holds a lone surrogate (\\ud800-\\udfff), which is not text") from None
    return items


def parse_filter(text: str) -> Filter:
    """One ``"<key> <op> <value>"`` string parsed; FilterError names it when it cannot be."""
    bad_key: str | None = None
    for pattern in (_STRICT, _LOOSE):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        key, value = match.group(1), match.groups()[-1]
        op = next(group for group in match.groups()[1:-1] if group)
        if _KEY.fullmatch(key):
            return Filter(key, op, value)
        bad_key = key
    if bad_key is not None:
        raise FilterError(f'invalid key "{bad_key}" in filter: "{text}"')
    raise FilterError(f'could not parse filter: "{text}"')


def parse_filters(raw: str | None) -> list[Filter]:
    """The ``filters`` query value (a JSON array of ``"<key> <op> <value>"`` strings) parsed."""
    return [parse_filter(item) for item in _json_string_list(raw, "filters")]


def parse_order_by(raw: str | None) -> list[tuple[str, str]]:
    """The ``order_by`` query value (a JSON array of ``"<key> ASC|DESC"``) as (key, "ASC"|"DESC") pairs.
    The original demands a direction; a bare key is taken as ASC rather than refused."""
    result: list[tuple[str, str]] = []
    for item in _json_string_list(raw, "order_by"):
        parts = item.split()
        if not 1 <= len(parts) <= 2:
            raise FilterError(f'could not parse order_by: "{item}"')
        key = parts[0]
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if not _KEY.fullmatch(key):
            raise FilterError(f'invalid key "{key}" in order_by: "{item}"')
        if direction not in ("ASC", "DESC"):
            raise FilterError(f'unknown order_by direction "{parts[1]}" in "{item}" (use ASC or DESC)')
        result.append((key, direction))
    return result


# ---------------------------------------------------------------------------------------- schema typing
def _alternatives(node: Any) -> Iterator[dict[str, Any]]:
    """The node and every schema it combines (anyOf/oneOf/allOf): a path may resolve in any of them."""
    if not isinstance(node, dict):
        return
    yield node
    for combinator in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(combinator) or []:
            yield from _alternatives(sub)


def _types(node: dict[str, Any]) -> set[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    if "properties" in node:
        return {"object"}
    if "items" in node:
        return {"array"}
    enum = node.get("enum")
    if isinstance(enum, list):  # an untyped enum: its members say what it holds
        kinds = {"boolean" if isinstance(v, bool) else "number" if isinstance(v, int | float) else "string"
                 for v in enum if v is not None}
        return kinds
    return set()


def _array_items(node: dict[str, Any]) -> list[Any] | None:
    if "array" not in _types(node) and "items" not in node:
        return None
    items = node.get("items")
    if isinstance(items, list):  # tuple validation: any position's schema may apply
        return items
    return [items] if isinstance(items, dict) else []


def _children(node: dict[str, Any], segment: str) -> list[Any]:
    found: list[Any] = []
    properties = node.get("properties")
    if isinstance(properties, dict) and segment in properties:
        found.append(properties[segment])
    for pattern, sub in (node.get("patternProperties") or {}).items():
        if re.search(pattern, segment):
            found.append(sub)
    if not found and isinstance(node.get("additionalProperties"), dict):
        found.append(node["additionalProperties"])
    return found


Resolved = Iterator[tuple[set[str], list[bool]]]  # (leaf types, array flag per segment so far)


def _resolve(node: Any, segments: Sequence[str], index: int, arrays: list[bool]) -> Resolved:
    """Every way ``segments[index:]`` resolves below ``node``: (leaf types, array flags per segment)."""
    for alt in _alternatives(node):
        for child in _children(alt, segments[index]):
            yield from _descend(child, segments, index, arrays)


def _descend(child: Any, segments: Sequence[str], index: int, arrays: list[bool]) -> Resolved:
    for alt in _alternatives(child):
        items = _array_items(alt)
        flags = arrays + [items is not None]
        targets: list[Any] = items if items is not None else [alt]
        if index + 1 == len(segments):
            # An array without an items schema still counts as an array, of text.
            yield {t for target in targets for a in _alternatives(target) for t in _types(a)}, flags
        else:
            for target in targets:
                yield from _resolve(target, segments, index + 1, flags)


def path_type(schemas: Sequence[dict[str, Any]], key: str) -> PathType:
    """The type of dot-path ``key`` inside ``data``, merged over every schema that applies: numeric if
    numeric in any, boolean only if boolean wherever found, an array at a segment if an array in any."""
    segments = key.split(".")
    found = [r for schema in schemas for r in _resolve(schema, segments, 0, [])]
    if not found:
        return PathType()
    arrays = tuple(any(flags[i] for _, flags in found) for i in range(len(segments)))
    leaf = set().union(*(types for types, _ in found)) - {"null"}
    kind: Kind = "numeric" if leaf & {"integer", "number"} else "boolean" if leaf == {"boolean"} else "text"
    return PathType(kind, arrays)


# ------------------------------------------------------------------------------------------------ values
def _numbers(f: Filter, values: list[str], dialect: str) -> list[Any]:
    result: list[Any] = []
    for value in values:
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise FilterError(f'filter "{f}": "{value}" is not a number')
        if number and not -_MAX_EXPONENT <= number.adjusted() <= _MAX_EXPONENT:
            # PostgreSQL's numeric refuses exponents past about ±16,383 (a 500), SQLite's doubles stop at
            # ±1e308: one bound for both, so a filter means the same on either store.
            raise FilterError(f'filter "{f}": "{value}" is out of range (at most 1e{_MAX_EXPONENT} in '
                              f'magnitude, and 0 or at least 1e-{_MAX_EXPONENT})')
        if dialect == "postgresql":
            result.append(number)
        elif number == number.to_integral_value() and abs(number) < 2**63:
            result.append(int(number))  # exact for big integers, which a float would round
        else:
            result.append(float(number))
    return result


def _timestamps(f: Filter, values: list[str]) -> list[datetime]:
    result: list[datetime] = []
    for value in values:
        try:
            moment = datetime.fromisoformat(value)
            # A value without an offset means UTC (the server's clock), not the server process's local zone.
            result.append(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC))
        except ValueError:
            raise FilterError(f'filter "{f}": "{value}" is not an ISO 8601 date/time') from None
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first UTC moment Python can hold
            raise FilterError(f'filter "{f}": "{value}" is out of range in UTC') from None
    return result


def _booleans(f: Filter, values: list[str]) -> list[str]:
    lowered = [v.lower() for v in values]
    for value, low in zip(values, lowered):
        if low not in ("true", "false"):
            raise FilterError(f'filter "{f}": "{value}" is not true or false')
    return lowered


def _fuzzy(value: str) -> str:
    return "%" + "%".join(ch for ch in value if ch.isascii() and ch.isalnum()) + "%"


# --------------------------------------------------------------------------------------------- operators
def _positive(
    f: Filter, kind: str, dialect: str, column_type: sa.types.TypeEngine[Any] | None = None
) -> Callable[[sa.ColumnElement[Any]], sa.ColumnElement[bool]]:
    """The predicate of ``=``, ranges, IN, LIKE or ``~`` (negations are built as its complement)."""
    op = {"!=": "=", "NOT_LIKE": "LIKE"}.get(f.op, f.op)
    if op in ("LIKE", "~"):
        if kind == "timestamp":
            raise FilterError(f'filter "{f}": {f.op} cannot be used on {f.key}')
        pattern = _fuzzy(f.value) if op == "~" else f.value
        if dialect == "postgresql":
            return lambda expr: expr.ilike(pattern)
        return lambda expr: sa.func.lower(expr).like(sa.func.lower(sa.literal(pattern)))
    raw = f.value.split(",") if op == "IN" else [f.value]
    if len(raw) > MAX_IN_VALUES:  # each is a bound parameter: SQLite takes 32,766 a query, psycopg 65,535
        raise FilterError(f'filter "{f.key} IN ...": at most {MAX_IN_VALUES} values, not {len(raw)}')
    values: list[Any]
    if kind == "numeric":
        values = _numbers(f, raw, dialect)
    elif kind == "timestamp":
        values = _timestamps(f, raw)
    elif kind == "boolean" and op in ("=", "IN"):
        values = _booleans(f, raw)
    else:
        values = raw
    bound = [sa.literal(v, column_type) if column_type is not None else v for v in values]
    if op == "IN":
        return lambda expr: expr.in_(bound)
    value = bound[0]
    if op == "=":
        return lambda expr: expr == value
    compare = {"<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}[op]
    text = kind not in ("numeric", "timestamp")
    return lambda expr: getattr(text_order(expr, dialect) if text else expr, compare)(value)


def _negated(f: Filter) -> bool:
    return f.op in ("!=", "NOT_LIKE")


def filter_clause(
    table: sa.Table, f: Filter, path_type: PathType | None, dialect: str
) -> sa.ColumnElement[bool]:
    """The WHERE condition of one filter on a read-model table (raises FilterError on a bad value)."""
    if f.op not in OPERATORS:
        raise FilterError(f'unknown operator "{f.op}" in filter: "{f}"')
    # Columns have no schema type: a path type handed in for them is ignored.
    ptype = path_type if path_type is not None and f.key not in COLUMN_KEYS else PathType()
    segments = f.key.split(".")
    if len(ptype.arrays) != len(segments):
        ptype = PathType(ptype.kind, (False,) * len(segments))
    if ptype.through_array:
        predicate = _positive(f, ptype.kind, dialect)
        exists = any_element(table.c.data, segments, ptype.arrays, ptype.kind, dialect, predicate)
        return sa.not_(exists) if _negated(f) else exists
    expr, kind, column_type = _scalar(table, f.key, segments, ptype, dialect)
    matches = _positive(f, kind, dialect, column_type)(expr)
    # NOT(NULL) is NULL: the complement must say outright that a missing value does not equal the value.
    return sa.or_(expr.is_(None), sa.not_(matches)) if _negated(f) else matches


def _scalar(
    table: sa.Table, key: str, segments: list[str], ptype: PathType, dialect: str
) -> tuple[sa.ColumnElement[Any], str, sa.types.TypeEngine[Any] | None]:
    """(value expression, kind, bind type) for a key with no arrays: a column or a data path."""
    if key in _TIMESTAMP_KEYS:
        column = table.c[key]
        return column, "timestamp", column.type  # the column's type normalises datetimes per dialect
    if key == "id" or (ptype.kind == "text" and key not in _NOT_DATA_COLUMNS and key in table.c):
        return table.c[key], "text", None  # a promoted, indexed copy of data.<key> (state, name, workflow_id ...)
    return scalar_value(table.c.data, segments, ptype.kind, dialect), ptype.kind, None


def order_clause(
    table: sa.Table, key: str, direction: str, path_type: PathType | None, dialect: str
) -> sa.ColumnElement[Any]:
    """ORDER BY one key, NULLS LAST either way (native on PostgreSQL and SQLite >= 3.30)."""
    direction = direction.upper()
    if direction not in ("ASC", "DESC"):
        raise FilterError(f'unknown order_by direction "{direction}" for "{key}" (use ASC or DESC)')
    if not _KEY.fullmatch(key):
        raise FilterError(f'invalid key "{key}" in order_by')
    segments = key.split(".")
    ptype = path_type if path_type is not None and key not in COLUMN_KEYS else PathType()
    if ptype.through_array:
        raise FilterError(f'cannot order by "{key}": it goes through an array')
    expr, kind, _ = _scalar(table, key, segments, ptype, dialect)
    if kind not in ("numeric", "timestamp"):
        expr = text_order(expr, dialect)
    ordered = expr.asc() if direction == "ASC" else expr.desc()
    return ordered.nulls_last()
