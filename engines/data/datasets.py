"""A dataset (reference §3.2) as the engines read it: its columns (partitions last), their SQL types, and the
conversion of a column's text to what a SQL target accepts (``date_pattern``, length)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

NUMERIC_DEFAULT = (38, 10)  # precision and scale when a NUMERIC column leaves them out


class DataFileError(ValueError):
    """A file that cannot be read at all (bad compression, not text, not Parquet, a dataset format that cannot
    read it); names the file."""


class RowError(ValueError):
    """One bad row: names the row number, the file and (when known) the column, its type and the value."""

    def __init__(self, row: int, path: str, reason: str, column: Column | None = None) -> None:
        self.row, self.path, self.reason, self.column = row, path, reason, column
        where = f'column "{column.name}" ({column.type_label}): ' if column is not None else ""
        super().__init__(f"row {row:,} of {path}: {where}{reason}")


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    path: str | None = None
    date_pattern: str | None = None
    is_nullable: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Column:
        return cls(str(data["name"]), str(data.get("data_type") or "STRING").upper(), data.get("length"),
                   data.get("precision"), data.get("scale"), data.get("path"), data.get("date_pattern"),
                   data.get("is_nullable", True) is not False)

    @property
    def type_label(self) -> str:
        if self.data_type in ("STRING", "VARCHAR") and self.length:
            return f"{self.data_type}({self.length})"
        if self.data_type == "NUMERIC":
            return "NUMERIC({},{})".format(*self.numeric)
        return self.data_type

    @property
    def numeric(self) -> tuple[int, int]:
        return (self.precision or NUMERIC_DEFAULT[0],
                self.scale if self.scale is not None else (0 if self.precision else NUMERIC_DEFAULT[1]))

    def sql_type(self) -> str:
        """The PostgreSQL (and Redshift, DuckDB) type of the column."""
        kind = self.data_type
        if kind in ("STRING", "VARCHAR"):
            return f"VARCHAR({self.length})" if self.length else "TEXT"
        if kind == "NUMERIC":
            return "NUMERIC({},{})".format(*self.numeric)
        return SQL_TYPES[kind]

    def sql_definition(self) -> str:
        return f'"{self.name}" {self.sql_type()}' + ("" if self.is_nullable else " NOT NULL")


SQL_TYPES = {"BIGINT": "BIGINT", "INT": "INTEGER", "SMALLINT": "SMALLINT", "DOUBLE": "DOUBLE PRECISION",
             "FLOAT": "DOUBLE PRECISION", "BOOLEAN": "BOOLEAN", "DATE": "DATE", "DATETIME": "TIMESTAMP",
             "TIMESTAMP": "TIMESTAMP"}


@dataclass(frozen=True)
class Dataset:
    """The fields of a dataset the engines act on; ``from_api`` takes the API's envelope or its data."""

    id: str | None
    name: str
    table_name: str
    location: str
    load_type: str
    file_format: str
    row_format: str
    compression: str
    columns: tuple[Column, ...]
    partitions: tuple[Column, ...] = ()
    hive_compatible_partition_folders: bool = False
    num_header_rows: int = 0
    delimited_by: str | None = None
    quoted_by: str | None = None
    escaped_by: str | None = None
    null_string: str | None = None
    primary_keys: tuple[str, ...] = ()
    merge_keys: tuple[str, ...] = ()
    batch_merge_sort_keys: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_api(cls, envelope: dict[str, Any]) -> Dataset:
        data = envelope.get("data", envelope) if "data" in envelope else envelope
        fmt = data.get("data_format") or {}
        return cls(
            envelope.get("id") if "data" in envelope else None, str(data.get("name") or ""),
            str(data.get("table_name") or data.get("name") or ""), str(data["location"]).rstrip("/"),
            str(data.get("load_type") or "INSERT"), str(fmt.get("file_format") or "TEXTFILE"),
            str(fmt.get("row_format") or "DELIMITED"), str(data.get("compression") or "NONE"),
            tuple(Column.from_dict(c) for c in data.get("columns") or []),
            tuple(Column.from_dict(c) for c in data.get("partitions") or []),
            bool(data.get("hive_compatible_partition_folders")), int(fmt.get("num_header_rows") or 0),
            fmt.get("delimited_by"), fmt.get("quoted_by"), fmt.get("escaped_by"), fmt.get("null_string"),
            tuple(data.get("primary_keys") or ()), tuple(data.get("merge_keys") or ()),
            tuple(data.get("batch_merge_sort_keys") or ()), dict(data))

    @property
    def load_columns(self) -> tuple[Column, ...]:
        """What a load writes: the file's columns, then the partition columns taken from the key."""
        return self.columns + self.partitions

    @property
    def upsert_keys(self) -> tuple[str, ...]:
        """MERGE matches on merge_keys, falling back to primary_keys."""
        return self.merge_keys or self.primary_keys


# -- date patterns ---------------------------------------------------------------------------------------

# Both Java/Hive (yyyy-MM-dd HH:mm:ss) and Redshift/PostgreSQL (YYYY-MM-DD HH24:MI:SS) spellings; a pattern
# with a % is already strftime. Longest tokens first, so HH24 wins over HH and SSS over SS.
_DATE_TOKENS = {"yyyy": "%Y", "YYYY": "%Y", "yy": "%y", "YY": "%y", "MMM": "%b", "MM": "%m", "dd": "%d",
                "DD": "%d", "HH24": "%H", "HH": "%H", "hh": "%I", "mm": "%M", "MI": "%M", "ss": "%S",
                "SSS": "%f", "SS": "%S", "a": "%p", "Z": "%z", "XXX": "%z"}
_DATE_TOKEN_RE = re.compile("|".join(sorted(map(re.escape, _DATE_TOKENS), key=len, reverse=True)))


def strptime_pattern(pattern: str) -> str:
    """``date_pattern`` as a ``datetime.strptime`` format."""
    if "%" in pattern:
        return pattern
    text = pattern.replace("'T'", "T")
    return _DATE_TOKEN_RE.sub(lambda m: _DATE_TOKENS[m.group(0)], text)


class ValueConverter:
    """Prepares one record's text values for a SQL target: parses ``date_pattern`` columns to ISO text,
    truncates over-long VARCHARs when asked, and refuses NULL in a NOT NULL column with the row's name."""

    def __init__(self, columns: tuple[Column, ...], truncate_columns: bool = False) -> None:
        self.columns = columns
        self.dates = [(i, c, strptime_pattern(c.date_pattern)) for i, c in enumerate(columns)
                      if c.date_pattern and c.data_type in ("DATE", "DATETIME", "TIMESTAMP")]
        self.lengths = [(i, c.length) for i, c in enumerate(columns)
                        if truncate_columns and c.length and c.data_type in ("STRING", "VARCHAR")]
        self.required = [(i, c) for i, c in enumerate(columns) if not c.is_nullable]
        self.idle = not (self.dates or self.lengths or self.required)

    def convert(self, values: list[str | None], row: int, path: str) -> list[str | None]:
        if self.idle:
            return values
        for i, column, fmt in self.dates:
            value = values[i]
            if value is not None:
                try:
                    parsed = datetime.strptime(value, fmt)
                except ValueError:
                    raise RowError(row, path, f'invalid value "{value}" for date_pattern '
                                              f'"{column.date_pattern}"', column) from None
                values[i] = parsed.date().isoformat() if column.data_type == "DATE" else parsed.isoformat(" ")
        for i, length in self.lengths:
            value = values[i]
            if value is not None and len(value) > length:
                values[i] = value[:length]
        for i, column in self.required:
            if values[i] is None:
                raise RowError(row, path, "NULL in a column that is not nullable", column)
        return values
