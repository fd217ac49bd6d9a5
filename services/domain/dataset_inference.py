"""The dataset guess's inference, pure: the row format of the sampled lines (JSON lines or delimited), the
delimiter, quoting, escaping, header and null marker, and each column's type (see ``services.commands.dataset_guess``).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.domain.errors import BadRequest

MAX_COLUMNS = 1600  # Redshift's limit on a table's columns
VARCHAR_FLOOR = 256  # Redshift's default VARCHAR width
VARCHAR_MAX = 65535  # Redshift's widest VARCHAR

# Delimiters tried, most trusted first: when two split the sample equally well, the one less likely to
# occur inside a text value wins (commas are common in text, \x01 -- Hive's default -- never is).
DELIMITERS = ("\x01", "\t", "|", ";", ",")
NULL_MARKERS = ("\\N", "NULL", "null")  # besides the empty string

INTEGER = re.compile(r"^[+-]?\d+$")
LEADING_ZERO = re.compile(r"^[+-]?0\d")
DECIMAL = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][+-]?\d+)?$")
FLOAT_WORDS = {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)
SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

INT64 = 2**63
TYPED_KINDS = {"bool", "int", "decimal", "float", "date", "timestamp"}


# ------------------------------------------------------------------------------------------- values


@dataclass
class Column:
    """What the sample says of one column."""

    key: str  # the header name, the JSON path's keys joined by ".", or "" (col_N)
    path: str | None = None
    kinds: set[str] = field(default_factory=set)
    values: int = 0  # rows with a non-null value
    max_bytes: int = 0  # the widest value's UTF-8 length
    max_digits: int = 0  # for integers beyond BIGINT

    def add(self, kind: str | None, text: str) -> None:
        if kind is None:
            return
        self.values += 1
        self.kinds.add(kind)
        self.max_bytes = max(self.max_bytes, len(text.encode()))
        if kind == "decimal":
            self.max_digits = max(self.max_digits, len(text.lstrip("+-")))


def text_kind(value: str) -> str | None:
    """The kind of one delimited value; None for a null (empty, \\N, NULL)."""
    v = value.strip()
    if v == "" or v in NULL_MARKERS:
        return None
    low = v.lower()
    if low in ("true", "false"):
        return "bool"
    if INTEGER.match(v):
        if LEADING_ZERO.match(v):
            return "string"  # a code such as a zip code: an integer type would lose its zeros
        n = int(v)
        if -INT64 <= n < INT64:
            return "int"
        return "decimal" if len(v.lstrip("+-")) <= 38 else "string"
    if DECIMAL.match(v) or low in FLOAT_WORDS:
        return "float"
    return string_kind(v)


def string_kind(v: str) -> str:
    """date, timestamp or string, for a text value."""
    m = DATE.match(v)
    if m:
        return "date" if _valid_date(m) else "string"
    m = TIMESTAMP.match(v)
    if m:
        hour, minute, second = int(m[4]), int(m[5]), int(m[6] or 0)
        return "timestamp" if _valid_date(m) and hour < 24 and minute < 60 and second <= 60 else "string"
    return "string"


def _valid_date(m: re.Match[str]) -> bool:
    try:
        date(int(m[1]), int(m[2]), int(m[3]))
        return True
    except ValueError:
        return False


def merged_type(col: Column) -> dict[str, Any]:
    """The column's data_type (and length, precision, scale) from the kinds of its values."""
    kinds = col.kinds
    if kinds == {"bool"}:
        return {"data_type": "BOOLEAN"}
    if kinds == {"int"}:
        return {"data_type": "BIGINT"}
    if kinds and kinds <= {"int", "decimal"}:
        return {"data_type": "NUMERIC", "precision": 38, "scale": 0}
    if kinds and kinds <= {"int", "decimal", "float"}:
        return {"data_type": "DOUBLE"}
    if kinds == {"date"}:
        return {"data_type": "DATE"}
    if kinds and kinds <= {"date", "timestamp"}:
        return {"data_type": "TIMESTAMP"}
    if col.max_bytes > VARCHAR_MAX:
        return {"data_type": "STRING"}
    return {"data_type": "VARCHAR", "length": min(VARCHAR_MAX, max(VARCHAR_FLOOR, _pow2(col.max_bytes)))}


def _pow2(n: int) -> int:
    return 1 if n <= 1 else 2 ** math.ceil(math.log2(n))


# ------------------------------------------------------------------------------------------ row formats


@dataclass
class Guess:
    row_format: str
    columns: list[Column]
    rows: int  # data rows sampled
    num_header_rows: int = 0
    delimited_by: str | None = None
    quoted_by: str | None = None
    escaped_by: str | None = None
    null_string: str | None = None


def infer(lines: list[str], key: str = "the object") -> Guess:
    """The row format and columns of the sampled lines."""
    if not lines:
        raise BadRequest(f"s3_path: {key!r} holds no lines to guess from")
    first = lines[0].strip()
    if first.startswith("{"):
        return infer_json(lines, key)
    if first == "[" or first.startswith(("[{", "[[", '["')):
        raise BadRequest(f"s3_path: {key!r} holds a JSON array; only JSON lines (one object a line) or delimited "
                         "text can be guessed")
    return infer_delimited(lines)


def infer_json(lines: list[str], key: str) -> Guess:
    columns: dict[str, Column] = {}
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError as exc:
            hint = " (a pretty-printed JSON document?)" if number == 1 else ""
            raise BadRequest(f"s3_path: {key!r} line {number} is not a JSON object{hint}: {exc}; only JSON lines "
                             "(one object a line) or delimited text can be guessed") from exc
        if not isinstance(row, dict):
            raise BadRequest(f"s3_path: {key!r} line {number} is JSON but not an object")
        _walk_json(row, [], columns)
        if len(columns) > MAX_COLUMNS:
            raise BadRequest(f"s3_path: {key!r} has more than {MAX_COLUMNS} distinct JSON paths")
    # A path seen both as a value and as an object holding others ({} in one line, {"a": 1} in another)
    # is described by its children.
    kept = [c for k, c in columns.items() if not any(other.startswith(k + "\x00") for other in columns)]
    return Guess("JSON", kept, len(lines))


def _walk_json(value: Any, keys: list[str], columns: dict[str, Column]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk_json(v, [*keys, str(k)], columns)
        return
    if not keys:
        return
    ident = "\x00".join(keys)
    col = columns.get(ident)
    if col is None:
        col = columns[ident] = Column("_".join(keys), _json_path(keys))
    if value is None or value == {}:
        return
    if isinstance(value, bool):
        col.add("bool", json.dumps(value))
    elif isinstance(value, int):
        col.add("int" if -INT64 <= value < INT64 else "decimal", str(value))
    elif isinstance(value, float):
        col.add("float", repr(value))
    elif isinstance(value, str):
        col.add(string_kind(value), value)
    else:  # an array: loaded as its JSON text
        col.add("string", json.dumps(value, ensure_ascii=False))


def _json_path(keys: list[str]) -> str:
    """The original's path: the keys joined by "." (its Redshift engine prepends "$."); a key that is no
    plain identifier is written ['key'] after the first."""
    out = keys[0]
    for k in keys[1:]:
        out += f".{k}" if SIMPLE_KEY.match(k) else "['" + k.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


def _parse(lines: list[str], delimiter: str, escape: str | None) -> list[list[str]]:
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, escapechar=escape,
                        strict=False)
    rows: list[list[str]] = []
    try:
        for row in reader:  # row by row, so the rows read before a csv.Error are kept
            rows.append(row)  # noqa: PERF402
    except csv.Error:
        pass  # a quoted value still open where the sample ends: the rows before it stand
    return [r for r in rows if any(v.strip() for v in r)]


def choose_delimiter(lines: list[str]) -> str | None:
    """The candidate splitting most lines into the same number (≥ 2) of fields; near-ties go to the one less
    likely to occur inside text (DELIMITERS' order). None: a single column."""
    scored = []
    for rank, d in enumerate(DELIMITERS):
        if not any(d in line for line in lines):
            continue
        counts = [len(r) for r in _parse(lines, d, None)]
        if not counts:
            continue
        mode = max(set(counts), key=lambda c: (counts.count(c), c))
        if mode < 2:
            continue
        consistency = counts.count(mode) / len(counts)
        scored.append((consistency, rank, d))
    if not scored:
        return None
    best = max(s[0] for s in scored)
    return min((s for s in scored if s[0] >= best - 0.05), key=lambda s: s[1])[2]


def infer_delimited(lines: list[str]) -> Guess:
    delimiter = choose_delimiter(lines)
    escape = None
    if delimiter is None:
        # One column: any delimiter that never occurs in the sample keeps each line whole.
        delimiter = next((d for d in DELIMITERS if not any(d in line for line in lines)), "\x01")
    elif any(f"\\{delimiter}" in line or '\\"' in line for line in lines):
        escape = "\\"
    rows = _parse(lines, delimiter, escape)
    quote = re.compile(r'(^|' + re.escape(delimiter) + r')\s*"')
    quoted = any(quote.search(line) for line in lines)
    header = has_header(rows)
    names = rows[0] if header else []
    data = rows[1:] if header else rows
    width = max([len(names), *(len(r) for r in data)])
    if width > MAX_COLUMNS:
        raise BadRequest(f"s3_path: the sample splits into {width} columns, more than {MAX_COLUMNS}")
    columns = [Column(names[i] if i < len(names) else "") for i in range(width)]
    markers: dict[str, int] = {}
    for row in data:
        for i, value in enumerate(row):
            stripped = value.strip()
            if stripped in NULL_MARKERS:
                markers[stripped] = markers.get(stripped, 0) + 1
            columns[i].add(text_kind(value), value)
    null_string = max(markers, key=lambda m: markers[m]) if markers else None
    return Guess("DELIMITED", columns, len(data), 1 if header else 0, delimiter, '"' if quoted else None, escape,
                 null_string)


def has_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns. Where the other rows have a typed column (numbers, dates,
    booleans), the first row's value votes: a value of that type says data, another says header. Where every
    column is text, a constant-width column votes the same way by width. Without votes, the first row is a
    header when its values look like names (identifiers, none repeated below)."""
    if len(rows) < 2:
        return False
    first, rest = rows[0], rows[1:]
    cells = [c.strip() for c in first]
    named = [c for c in cells if c]
    if len(named) < len(cells) - 1 or len(set(named)) != len(named):
        return False  # names are present (one may be blank: an index column) and distinct
    if any(text_kind(c) not in ("string", None) for c in cells):
        return False  # a number, date or boolean is no column name
    header = data = 0
    for i, cell in enumerate(cells):
        values = [r[i] for r in rest if i < len(r) and text_kind(r[i]) is not None]
        if not values or not cell:
            continue
        if cell in (v.strip() for v in values):
            data += 1
            continue
        kinds = {text_kind(v) for v in values}
        if kinds & TYPED_KINDS and "string" not in kinds:
            header += 1  # the column is typed, and the first value (a string) is not of its type
        elif len(values) >= 2 and len({len(v.strip()) for v in values}) == 1:
            if len(cell) == len(values[0].strip()):
                data += 1
            else:
                header += 1
    if header or data:
        return header > data
    return all(SIMPLE_KEY.match(c) for c in named)
