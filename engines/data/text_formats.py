"""The two Hive text formats the csv module cannot read as Hive does:

- DELIMITED with an escape character and a ``null_string`` that holds it (Hive's LazySimpleSerDe default,
  ``\\N`` with ``escaped_by`` ``\\``): a field is null when its raw text, before unescaping, is the null string;
  the csv module unescapes first (``\\N`` becomes ``N``), so such files are split here instead.
- REGEX (Hive's RegexSerDe): each line must match ``data_format.regex_input`` whole (Python's ``re``, which
  reads the common Java patterns the same way); its groups are the columns in order. A line that does not match
  is a row error (counted against max_errors) where Hive would have read a row of nulls: a silent row of
  nulls in a warehouse is worse than a named line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from engines.data.datasets import DataFileError, Dataset, RowError

Record = tuple[int, list[str | None]]


def needs_hive_split(dataset: Dataset) -> bool:
    return bool(not dataset.quoted_by and dataset.escaped_by and dataset.null_string
                and dataset.escaped_by in dataset.null_string)


def hive_fields(lines: Iterable[str], dataset: Dataset, path: str) -> Iterator[Record]:
    """Records of an escaped, unquoted delimited file, nulls matched on the raw text."""
    escape, delimiter = re.escape(dataset.escaped_by or "\\"), re.escape(dataset.delimited_by or ",")
    field = re.compile(rf"(?:[^{escape}{delimiter}\r\n]|{escape}.)*", re.DOTALL)
    unescape = re.compile(rf"{escape}(.)", re.DOTALL)
    width, null, pending, number = len(dataset.columns), dataset.null_string, "", 0
    for line in lines:
        number += 1
        text = pending + line.rstrip("\r\n")
        if _ends_escaped(text, dataset.escaped_by or "\\"):  # an escaped line break: the record goes on
            pending = text + "\n"
            continue
        pending = ""
        if number <= dataset.num_header_rows or not text:
            continue
        raw, position = [], 0
        while True:
            match = field.match(text, position)
            assert match is not None  # the pattern matches the empty string
            raw.append(match.group())
            position = match.end()
            if position < len(text) and text[position] == (dataset.delimited_by or ","):
                position += 1
                continue
            break
        if position != len(text) or len(raw) != width:
            raise RowError(number, path, f"{len(raw)} field(s) where the dataset has {width} column(s) "
                                         f"({', '.join(c.name for c in dataset.columns)})")
        yield number, [None if value == null else unescape.sub(r"\1", value) for value in raw]


def _ends_escaped(text: str, escape: str) -> bool:
    run = len(text) - len(text.rstrip(escape))
    return run % 2 == 1


def regex_rows(lines: Iterable[str], dataset: Dataset, path: str) -> Iterator[Record]:
    pattern_text = (dataset.extra.get("data_format") or {}).get("regex_input")
    if not pattern_text:
        raise DataFileError(f"{path}: row_format REGEX needs data_format.regex_input")
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise DataFileError(f"{path}: data_format.regex_input is not a regular expression: {exc}") from None
    width = len(dataset.columns)
    if pattern.groups != width:
        raise DataFileError(f"{path}: data_format.regex_input has {pattern.groups} group(s) where the dataset "
                            f"has {width} column(s)")
    null = dataset.null_string
    for number, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        if number <= dataset.num_header_rows or not text:
            continue
        match = pattern.fullmatch(text)
        if match is None:
            raise RowError(number, path, f"line does not match data_format.regex_input: {text[:120]!r}")
        yield number, [None if v is None or v == null or (null is None and v == "") else v for v in match.groups()]
