"""Rows of a dataset's file, read as the dataset says (reference §3.2): TEXTFILE DELIMITED (delimiter, quote,
escape, null string, header rows; Hive's escaped ``\\N`` nulls and REGEX lines in engines/data/text_formats.py),
JSON lines (each column at its ``path``) and PARQUET; partition columns
from the key's folders. Every value is text or None, so each target parses it with its own types."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

from engines.data import s3 as s3_hook
from engines.data.datasets import Column, DataFileError, Dataset, RowError
from engines.data.text_formats import hive_fields, needs_hive_split, regex_rows

__all__ = ["DataFileError", "Record", "json_path", "partition_values", "read_rows"]
Record = tuple[int, list[str | None]]  # (row number in the file, 1-based and counting header rows; values)
PARQUET_BATCH_ROWS = 8192
csv.field_size_limit(sys.maxsize)  # a long text field is data, not an error


def read_rows(dataset: Dataset, s3: Any, path: str) -> Iterator[Record]:
    """The file's records in order, each with the dataset's columns then its partition columns."""
    partitions = partition_values(dataset, path)
    if dataset.file_format == "PARQUET":
        rows = _parquet(dataset, s3, path)
    elif dataset.row_format == "JSON":
        rows = _json_lines(dataset, s3, path)
    elif dataset.file_format == "TEXTFILE" and dataset.row_format == "REGEX":
        rows = _lines(dataset, s3, path, regex_rows)
    elif dataset.file_format == "TEXTFILE" and needs_hive_split(dataset):
        rows = _lines(dataset, s3, path, hive_fields)
    elif dataset.file_format == "TEXTFILE" and dataset.row_format in ("DELIMITED", "NONE"):
        rows = _delimited(dataset, s3, path)
    else:
        raise DataFileError(f"{dataset.file_format} {dataset.row_format} files cannot be read by this engine "
                            "(TEXTFILE DELIMITED, JSON and REGEX, and PARQUET can; RCFILE needs Hive: the "
                            "emr_engine)")
    if not partitions:
        return rows
    return ((number, values + partitions) for number, values in rows)


def partition_values(dataset: Dataset, path: str) -> list[str | None]:
    """The partition columns' values from the folders between the location and the file: by name from
    ``key=value`` folders when hive_compatible_partition_folders, else by position."""
    if not dataset.partitions:
        return []
    relative = path[len(dataset.location) + 1:] if path.startswith(dataset.location + "/") else path
    folders = relative.split("/")[:-1]
    if dataset.hive_compatible_partition_folders:
        found = dict(f.split("=", 1) for f in folders if "=" in f)
        values = [found.get(c.name) for c in dataset.partitions]
    else:
        values = [folders[i] if i < len(folders) else None for i in range(len(dataset.partitions))]
    missing = [c.name for c, v in zip(dataset.partitions, values) if v is None and not c.is_nullable]
    if missing:
        raise DataFileError(f"{path}: no folder gives partition column(s) {', '.join(missing)}")
    return [None if v == "__HIVE_DEFAULT_PARTITION__" else v for v in values]


def _text(dataset: Dataset, raw: IO[bytes], path: str) -> Iterator[str]:
    """Decoded lines; decompression and decoding failures name the file."""
    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")  # type: ignore[type-var]
    try:
        yield from text
    except (zlib.error, OSError, EOFError) as exc:
        raise DataFileError(f"{path}: cannot decompress as {dataset.compression}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text (compression {dataset.compression}?): {exc}") from exc


def _lines(dataset: Dataset, s3: Any, path: str,
           parse: Callable[[Iterable[str], Dataset, str], Iterator[Record]]) -> Iterator[Record]:
    with s3_hook.open_object(s3, path, dataset.compression) as raw:
        yield from parse(_text(dataset, raw, path), dataset, path)


def _csv_dialect(dataset: Dataset) -> dict[str, Any]:
    delimiter = dataset.delimited_by or ","
    if dataset.quoted_by:
        escape = dataset.escaped_by if dataset.escaped_by and dataset.escaped_by != dataset.quoted_by else None
        return {"delimiter": delimiter, "quotechar": dataset.quoted_by, "escapechar": escape,
                "doublequote": escape is None, "quoting": csv.QUOTE_MINIMAL, "strict": False}
    return {"delimiter": delimiter, "quoting": csv.QUOTE_NONE, "escapechar": dataset.escaped_by or None}


def _delimited(dataset: Dataset, s3: Any, path: str) -> Iterator[Record]:
    width = len(dataset.columns)
    null = dataset.null_string
    with s3_hook.open_object(s3, path, dataset.compression) as raw:
        reader = csv.reader(_text(dataset, raw, path), **_csv_dialect(dataset))
        number = 0
        try:
            for fields in reader:
                number += 1
                if number <= dataset.num_header_rows or not fields:
                    continue  # header rows; blank lines are ignored, as the original's IGNOREBLANKLINES
                if len(fields) != width:
                    raise RowError(number, path, f"{len(fields)} field(s) where the dataset has {width} "
                                                 f"column(s) ({', '.join(c.name for c in dataset.columns)})")
                if null is None:
                    yield number, [f if f != "" else None for f in fields]
                else:
                    yield number, [f if f != null else None for f in fields]
        except csv.Error as exc:
            raise RowError(number, path, f"not {_describe(dataset)}: {exc}") from exc


def _describe(dataset: Dataset) -> str:
    return f"delimited text (delimited_by {dataset.delimited_by!r}, quoted_by {dataset.quoted_by!r})"


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def json_path(column: Column) -> list[str | int]:
    """A column's ``path`` (``a.b``, ``$.a.b[0]``; default: its name) as keys and indexes."""
    text = column.path or column.name
    text = text[2:] if text.startswith("$.") else text.lstrip("$")
    return [int(index) if index else key for key, index in _PATH_PART.findall(text)]


def _json_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _json_lines(dataset: Dataset, s3: Any, path: str) -> Iterator[Record]:
    paths = [json_path(c) for c in dataset.columns]
    with s3_hook.open_object(s3, path, dataset.compression) as raw:
        for number, line in enumerate(_text(dataset, raw, path), start=1):
            if number <= dataset.num_header_rows or not line.strip():
                continue
            try:
                document = json.loads(line)
            except ValueError as exc:
                raise RowError(number, path, f"not valid JSON: {exc}") from None
            if not isinstance(document, dict):
                raise RowError(number, path, f"a JSON line must be an object, not {type(document).__name__}")
            values: list[str | None] = []
            for steps in paths:
                node: Any = document
                for step in steps:
                    if isinstance(step, int):
                        node = node[step] if isinstance(node, list) and step < len(node) else None
                    else:
                        node = node.get(step) if isinstance(node, dict) else None
                    if node is None:
                        break
                values.append(_json_value(node))
            yield number, values


def _parquet_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(" ")
    if isinstance(value, (date, Decimal, int, float)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def _parquet(dataset: Dataset, s3: Any, path: str) -> Iterator[Record]:
    import pyarrow.lib
    import pyarrow.parquet as pq  # imported here: only Parquet loads pay for pyarrow

    names = [c.name for c in dataset.columns]
    with s3_hook.local_copy(s3, path) as local:
        try:
            parquet = pq.ParquetFile(local)
        except (pyarrow.lib.ArrowException, OSError) as exc:
            raise DataFileError(f"{path}: not a Parquet file: {exc}") from exc
        present = set(parquet.schema_arrow.names)
        missing = [n for n in names if n not in present]
        if missing:
            raise DataFileError(f"{path}: the Parquet file has no column(s) {', '.join(missing)} "
                                f"(it has {', '.join(parquet.schema_arrow.names)})")
        number = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=names):
            columns = [batch.column(i).to_pylist() for i in range(len(names))]
            for row in zip(*columns):
                number += 1
                yield number, [_parquet_value(v) for v in row]
