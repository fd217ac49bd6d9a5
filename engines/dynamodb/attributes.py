"""A dataset's rows as DynamoDB items. The type mapping, column -> attribute:

============================  ====  ================================================================
column data_type              type  value
============================  ====  ================================================================
STRING, VARCHAR               S     the text as read (``length`` is not enforced; DynamoDB has none)
BIGINT, INT, SMALLINT         N     the integer, checked against the column type's range
DOUBLE, FLOAT                 N     the shortest text of the double (``repr``); NaN and infinities
                                    are refused, as DynamoDB stores only finite numbers
NUMERIC(p, s)                 N     the decimal rounded half-up to ``s`` places, at most ``p`` digits
                                    (NUMERIC alone is NUMERIC(38,10), as in the SQL engines)
BOOLEAN                       BOOL  true/t/yes/y/1 or false/f/no/n/0, any case
DATE                          S     ISO 8601, ``2026-01-31``
DATETIME, TIMESTAMP           S     ISO 8601, ``2026-01-31T13:45:00[.ffffff][+hh:mm]``
============================  ====  ================================================================

A NULL (an empty field or the dataset's null_string, a JSON null or absent path) is omitted from the item, as
DynamoDB has no typed null worth querying; NULL in a column that is not nullable refuses the row. Dates and
timestamps are parsed with the column's ``date_pattern`` when it has one (Hive or strftime spelling), else as
ISO text. A JSON object or array in a JSON-lines column arrives as its JSON text (S).

Key attributes take the type of the table's key (create_table gives a column its mapped type; a BOOLEAN key is
N 1/0, as the original's mapping had it): a key cannot be NULL or an empty string. Every refusal names the row,
file, column, its type and the value, e.g. ``row 7 of s3://b/x.csv: column "n" (INT): invalid value "abc"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from engines.data.datasets import Column, RowError, strptime_pattern

AttributeValue = dict[str, Any]
Convert = Callable[[str], AttributeValue]
Key = tuple[str, ...]
ATTRIBUTE_TYPES = {"STRING": "S", "VARCHAR": "S", "BIGINT": "N", "INT": "N", "SMALLINT": "N", "DOUBLE": "N",
                   "FLOAT": "N", "NUMERIC": "N", "BOOLEAN": "BOOL", "DATE": "S", "DATETIME": "S",
                   "TIMESTAMP": "S"}
INTEGER_RANGES = {"BIGINT": 2**63, "INT": 2**31, "SMALLINT": 2**15}
TRUE = frozenset({"true", "t", "yes", "y", "1"})
FALSE = frozenset({"false", "f", "no", "n", "0"})
MAX_ITEM_BYTES = 400 * 1024
_DECIMALS = Context(prec=80)  # wide enough that rounding never raises; the column's precision is checked after


def attribute_type(column: Column) -> str:
    """The DynamoDB type of the column's attribute (S, N or BOOL)."""
    try:
        return ATTRIBUTE_TYPES[column.data_type]
    except KeyError:
        raise ValueError(f'column "{column.name}" has data_type {column.data_type}, which has no DynamoDB '
                         "type") from None


def key_type(column: Column) -> str:
    """The key attribute type create_table declares for a column: S or N (a BOOLEAN key is N, as the original)."""
    found = attribute_type(column)
    return "N" if found == "BOOL" else found


def _invalid(value: str) -> ValueError:
    return ValueError(f'invalid value "{value}"')


def _integer(column: Column) -> Convert:
    bound = INTEGER_RANGES[column.data_type]

    def convert(value: str) -> AttributeValue:
        try:
            number = int(value)
        except ValueError:
            raise _invalid(value) from None
        if not -bound <= number < bound:
            raise ValueError(f'value "{value}" is out of range for {column.data_type}')
        return {"N": str(number)}

    return convert


def _double(value: str) -> AttributeValue:
    try:
        number = float(value)
    except ValueError:
        raise _invalid(value) from None
    if not math.isfinite(number):
        raise ValueError(f'invalid value "{value}" (DynamoDB numbers are finite)')
    return {"N": repr(number)}


def _numeric(column: Column) -> Convert:
    precision, scale = column.numeric
    step = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (precision - scale)

    def convert(value: str) -> AttributeValue:
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise _invalid(value) from None
        if not number.is_finite():
            raise ValueError(f'invalid value "{value}" (DynamoDB numbers are finite)')
        number = number.quantize(step, ROUND_HALF_UP, _DECIMALS)
        if abs(number) >= limit:
            raise ValueError(f'value "{value}" is out of range for {column.type_label}')
        return {"N": str(number)}

    return convert


def _boolean(value: str) -> AttributeValue:
    text = value.strip().lower()
    if text in TRUE:
        return {"BOOL": True}
    if text in FALSE:
        return {"BOOL": False}
    raise _invalid(value)


def _date(column: Column) -> Convert:
    pattern = strptime_pattern(column.date_pattern) if column.date_pattern else None

    def convert(value: str) -> AttributeValue:
        try:
            if pattern is not None:
                return {"S": datetime.strptime(value, pattern).date().isoformat()}
            try:
                return {"S": date.fromisoformat(value).isoformat()}
            except ValueError:
                return {"S": datetime.fromisoformat(value).date().isoformat()}
        except ValueError:
            raise _date_error(column, value) from None

    return convert


def _timestamp(column: Column) -> Convert:
    pattern = strptime_pattern(column.date_pattern) if column.date_pattern else None

    def convert(value: str) -> AttributeValue:
        try:
            parsed = datetime.strptime(value, pattern) if pattern is not None else datetime.fromisoformat(value)
        except ValueError:
            raise _date_error(column, value) from None
        return {"S": parsed.isoformat()}

    return convert


def _date_error(column: Column, value: str) -> ValueError:
    if column.date_pattern:
        return ValueError(f'invalid value "{value}" for date_pattern "{column.date_pattern}"')
    return ValueError(f'invalid value "{value}" (not an ISO {column.data_type.lower()})')


def _string(value: str) -> AttributeValue:
    return {"S": value}


def converter(column: Column) -> Convert:
    """The column's text -> its attribute value; raises ValueError (the reason) for a value it cannot take."""
    kind = column.data_type
    if kind in INTEGER_RANGES:
        return _integer(column)
    if kind in ("DOUBLE", "FLOAT"):
        return _double
    if kind == "NUMERIC":
        return _numeric(column)
    if kind == "BOOLEAN":
        return _boolean
    if kind == "DATE":
        return _date(column)
    if kind in ("DATETIME", "TIMESTAMP"):
        return _timestamp(column)
    attribute_type(column)  # refuses a type it does not know
    return _string


def key_converter(column: Column, table_type: str) -> Convert:
    """A key column's converter: the value as the table's key type (S or N), never empty."""
    convert = converter(column)
    natural = attribute_type(column)

    def as_key(value: str) -> AttributeValue:
        found = convert(value)
        if natural == "BOOL":
            text = "1" if found["BOOL"] else "0"
        else:
            text = found[natural]
        if table_type == "N" and natural != "N" and natural != "BOOL":
            try:
                number = Decimal(text)
            except InvalidOperation:
                raise ValueError(f'invalid value "{value}" for the table\'s number key') from None
            if not number.is_finite():
                raise _invalid(value)
            text = str(number)  # " 12 " is a number to Decimal, not to DynamoDB
        elif table_type == "S" and text == "":
            raise ValueError("a key attribute cannot be an empty string")
        return {table_type: text}

    return as_key


class ItemBuilder:
    """Builds each record's item and its key; ``key_types`` maps the table's key attribute names (hash first)
    to their types (S or N)."""

    def __init__(self, columns: Sequence[Column], key_types: Mapping[str, str]) -> None:
        names = {c.name for c in columns}
        missing = [k for k in key_types if k not in names]
        if missing:
            raise ValueError(f"the table's key attribute(s) {', '.join(missing)} are not columns of the dataset "
                             f"({', '.join(c.name for c in columns)})")
        binary = [k for k, t in key_types.items() if t not in ("S", "N")]
        if binary:
            raise ValueError(f"the table's key attribute(s) {', '.join(binary)} are binary, which a dataset "
                             "column cannot fill")
        self.columns = tuple(columns)
        self.plan = [(i, c.name, key_converter(c, key_types[c.name]) if c.name in key_types else converter(c),
                      c.name in key_types or not c.is_nullable, c) for i, c in enumerate(columns)]
        self.keys = [(name, key_types[name]) for name in key_types]

    def build(self, values: Sequence[str | None], row: int, path: str) -> tuple[Key, dict[str, AttributeValue]]:
        item: dict[str, AttributeValue] = {}
        for i, name, convert, required, column in self.plan:
            value = values[i]
            if value is None:
                if required:
                    reason = "a key attribute cannot be NULL" if any(k == name for k, _ in self.keys) \
                        else "NULL in a column that is not nullable"
                    raise RowError(row, path, reason, column)
                continue
            try:
                item[name] = convert(value)
            except ValueError as exc:
                raise RowError(row, path, str(exc), column) from None
        if sum(len(v) for v in values if v) > MAX_ITEM_BYTES // 4:
            size = item_size(item)
            if size > MAX_ITEM_BYTES:
                raise RowError(row, path, f"the item is {size:,} bytes, more than DynamoDB's 400 KB")
        return tuple(item[name][kind] for name, kind in self.keys), item


def item_size(item: Mapping[str, AttributeValue]) -> int:
    """DynamoDB's measure of an item: each name's and value's UTF-8 length (numbers counted as their text, which
    is never less than DynamoDB's count)."""
    size = 0
    for name, value in item.items():
        [(kind, data)] = value.items()
        size += len(name.encode()) + (1 if kind == "BOOL" else len(str(data).encode()))
    return size
