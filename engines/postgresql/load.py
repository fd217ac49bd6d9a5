"""Loading a dataset's files into a PostgreSQL table, exactly once: every file streamed from S3 into
``COPY ... FROM STDIN`` inside one transaction that also records the action and each file in the tracking
tables, so a retried or killed-and-re-run load never duplicates rows and a failed one leaves nothing behind.

Load types (reference §3.2): INSERT appends; MERGE upserts on merge_keys (else primary_keys) through a
temporary stage, duplicates within the load resolved by batch_merge_sort_keys (then the last row read);
RELOAD_ALL loads a fresh table and swaps it in at commit; RELOAD_LAST does the same with only the range's
last file (the original's meaning: its redshift engine kept the last key of the listing and truncated).
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.copy import LibpqWriter
from psycopg.generators import copy_to

from engines.data import s3 as s3_hook
from engines.data.datasets import Column, Dataset, RowError, ValueConverter
from engines.data.loads import LoadOptions, LoadResult, files_to_load
from engines.data.readers import DataFileError, read_rows
from engines.postgresql.hook import literal, quote

log = logging.getLogger("dart.engine.postgresql")

TRACKING_SCHEMA = "dart_tracking"
TRACKING_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {TRACKING_SCHEMA};
CREATE TABLE IF NOT EXISTS {TRACKING_SCHEMA}.loads (
    action_id text PRIMARY KEY, target text NOT NULL, load_type text NOT NULL, files integer NOT NULL,
    rows bigint NOT NULL, skipped_rows integer NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS {TRACKING_SCHEMA}.loaded_files (
    action_id text NOT NULL, s3_path text NOT NULL, subscription_id text, target text NOT NULL,
    rows bigint NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (action_id, s3_path));
CREATE UNIQUE INDEX IF NOT EXISTS loaded_files_subscription
    ON {TRACKING_SCHEMA}.loaded_files (subscription_id, s3_path) WHERE subscription_id IS NOT NULL;
"""


class _EndMarker(ValueError):
    """The file has a line ``\\.``, which COPY ... FROM STDIN would take for the end of the data."""


# Failures of a file's bytes copied as they are, after which the file is read again row by row (from the
# savepoint): that loads it if it can, and otherwise names the row, column and value as before.
_RAW_REFUSED = (psycopg.errors.DataError, psycopg.errors.IntegrityError, psycopg.errors.QueryCanceled,
                zlib.error, EOFError, OSError, UnicodeError, DataFileError, _EndMarker)
RAW_BLOCK = 1024 * 1024
COPY_CHUNK = 128 * 1024  # what psycopg hands libpq at a time (larger ones are split: psycopg's #255)
_COPY_CONTEXT = re.compile(r'COPY [^,]+, line (\d+)(?:, column ([^:]+))?(?:: "(.*)")?', re.DOTALL)


def ensure_tracking(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('dart_tracking ddl'))")  # concurrent engines
        conn.execute(TRACKING_DDL)


def consumed_paths(conn: psycopg.Connection[Any], subscription_id: str) -> set[str]:
    """Elements of the subscription some earlier action already loaded (its check-in may have been lost)."""
    rows = conn.execute(f"SELECT s3_path FROM {TRACKING_SCHEMA}.loaded_files WHERE subscription_id = %s",
                        [subscription_id]).fetchall()
    conn.commit()
    return {r[0] for r in rows}


class FlushingWriter(LibpqWriter):
    """psycopg's COPY writer, but each write waits until libpq has handed it to the socket. psycopg flushes
    only on macOS: elsewhere libpq's output buffer takes whatever the server has not read yet, so a load that
    outruns PostgreSQL grew without bound (peak RSS 133 MiB at 1 M rows, 230 at 5 M) and its partial sends
    memmove the rest of the buffer each time (10x the CPU for 5x the rows). Waiting here is the backpressure.
    ``copy_to`` is psycopg's own generator (psycopg.generators, pinned in setup.cfg)."""

    def write(self, data: Any) -> None:
        for start in range(0, len(data), COPY_CHUNK):
            self.connection.wait(copy_to(self._pgconn, data[start:start + COPY_CHUNK], flush=True))


def _end_marker(data: bytes) -> bool:
    return b"\n\\.\n" in data or b"\n\\.\r" in data


def raw_copy_options(dataset: Dataset, converter: ValueConverter) -> str | None:
    """``COPY ... FROM STDIN`` options under which PostgreSQL reads the file's own (decompressed) bytes as the
    row reader (engines.data.readers) would, or None when the dataset needs the reader: a CSV with a quote
    character (escaped by doubling it), one-byte delimiter and quote, at least two columns (PostgreSQL takes a
    blank line as a NULL row where the reader skips it; with two or more, it refuses the line and the reader
    takes over), no partition columns and no date_pattern to apply. Empty fields, quoted or not, are NULL, as
    the reader makes them (FORCE_NULL), or the dataset's null_string."""
    delimiter, quote_char = dataset.delimited_by or ",", dataset.quoted_by
    null = dataset.null_string
    simple = (dataset.file_format == "TEXTFILE" and dataset.row_format in ("DELIMITED", "NONE")
              and not dataset.partitions and len(dataset.columns) >= 2 and not converter.dates)
    if not simple or not quote_char or dataset.escaped_by not in (None, "", quote_char):
        return None
    special = {delimiter, quote_char, "\r", "\n"}
    if len(delimiter) != 1 or len(quote_char) != 1 or delimiter == quote_char:
        return None
    if not (delimiter + quote_char).isascii():
        return None
    if null is not None and (not null.isascii() or any(c in special for c in null)):
        return None
    columns = ", ".join(quote(c.name) for c in dataset.columns)
    return (f"FORMAT csv, DELIMITER {literal(delimiter)}, QUOTE {literal(quote_char)}, "
            f"NULL {literal(null or '')}, FORCE_NULL ({columns}), ENCODING 'UTF8'")


def table_sql(name: str, columns: Sequence[Column], primary_keys: Sequence[str], temp: bool = False) -> str:
    body = [c.sql_definition() for c in columns]
    if temp:
        body.append("_dart_seq bigserial")
    elif primary_keys:
        body.append(f"PRIMARY KEY ({', '.join(map(quote, primary_keys))})")
    kind = "TEMP TABLE" if temp else "TABLE"
    return f"CREATE {kind} {name} ({', '.join(body)})" + (" ON COMMIT DROP" if temp else "")


class Loader:
    """One load: ``run`` streams ``files`` into the target inside one transaction on ``conn``."""

    def __init__(self, conn: psycopg.Connection[Any], s3: Any, action_id: str, dataset: Dataset,
                 options: LoadOptions, progress: Callable[[int, int], None] | None = None) -> None:
        self.conn, self.s3, self.action_id, self.dataset, self.options = conn, s3, action_id, dataset, options
        self.progress = progress or (lambda done, total: None)
        self.columns = dataset.load_columns
        if not self.columns:
            raise ValueError(f"dataset {dataset.name} has no columns")
        self.table = options.table or dataset.table_name
        self.target = f"{quote(options.schema)}.{quote(self.table)}"
        self.converter = ValueConverter(self.columns, options.truncate_columns)
        self.column_list = ", ".join(quote(c.name) for c in self.columns)
        self.result = LoadResult(f"{options.schema}.{self.table}")
        self.raw_options = raw_copy_options(dataset, self.converter)

    def run(self, files: Sequence[tuple[str, int]]) -> LoadResult:
        load_type = self.dataset.load_type
        files = files_to_load(self.dataset, files)
        ensure_tracking(self.conn)
        with self.conn.transaction():
            cur = self.conn.cursor()
            # One run of an action at a time, and one load per table (MERGE and swaps must not interleave).
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"dart load {self.action_id}"])
            done = cur.execute(f"SELECT files, rows FROM {TRACKING_SCHEMA}.loads WHERE action_id = %s",
                               [self.action_id]).fetchone()
            if done is not None:
                self.result.files, self.result.rows, self.result.already_loaded = done[0], done[1], True
                return self.result
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"dart table {self.result.target}"])
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.options.schema)}")
            cur.execute(table_sql(self.target, self.columns, self.dataset.primary_keys).replace(
                "CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
            into = self._prepare(cur, load_type)
            size = self._round_size(len(files))
            for start in range(0, len(files), size):
                batch = files[start:start + size]
                for path, _ in batch:
                    rows = self._copy_file(cur, into, path)
                    cur.execute(f"INSERT INTO {TRACKING_SCHEMA}.loaded_files (action_id, s3_path, subscription_id,"
                                " target, rows) VALUES (%s, %s, %s, %s, %s)",
                                [self.action_id, path, self.options.subscription_id, self.result.target, rows])
                    self.result.files += 1
                    self.result.rows += rows
                    self.progress(self.result.files, len(files))
                if load_type == "MERGE":
                    self._merge(cur, into)
            if load_type in ("RELOAD_ALL", "RELOAD_LAST"):
                self._swap(cur, into)
            cur.execute(f"INSERT INTO {TRACKING_SCHEMA}.loads (action_id, target, load_type, files, rows,"
                        " skipped_rows) VALUES (%s, %s, %s, %s, %s, %s)",
                        [self.action_id, self.result.target, load_type, self.result.files, self.result.rows,
                         len(self.result.errors)])
        return self.result

    def _round_size(self, total: int) -> int:
        """MERGE applies its stage every batch_size files (bounding the stage); other loads are one round."""
        if self.dataset.load_type == "MERGE" and self.options.batch_size:
            return self.options.batch_size
        return max(1, total)

    def _prepare(self, cur: psycopg.Cursor[Any], load_type: str) -> str:
        """Where the rows are copied to: the target (INSERT), a temporary stage (MERGE) or a fresh table that
        replaces the target at commit (RELOAD_*), so readers see the old rows until then."""
        if load_type == "MERGE":
            cur.execute(table_sql("_dart_stage", self.columns, (), temp=True))
            return "_dart_stage"
        if load_type in ("RELOAD_ALL", "RELOAD_LAST"):
            fresh = f"{quote(self.options.schema)}.{quote(self._fresh_name)}"
            cur.execute(f"DROP TABLE IF EXISTS {fresh}")
            cur.execute(table_sql(fresh, self.columns, self.dataset.primary_keys))
            return fresh
        if load_type != "INSERT":
            raise ValueError(f"load_type {load_type!r} is not INSERT, MERGE, RELOAD_ALL or RELOAD_LAST")
        return self.target

    @property
    def _fresh_name(self) -> str:
        return f"{self.table[:50]}__dart_new"

    def _merge(self, cur: psycopg.Cursor[Any], stage: str) -> None:
        keys = [quote(k) for k in self.dataset.upsert_keys]
        match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        cur.execute(f"DELETE FROM {self.target} t USING (SELECT DISTINCT {', '.join(keys)} FROM {stage}) s "
                    f"WHERE {match}")
        order = [quote(k.split()[0]) + " " + k.split()[1] for k in self.dataset.batch_merge_sort_keys]
        cur.execute(f"INSERT INTO {self.target} ({self.column_list}) SELECT DISTINCT ON ({', '.join(keys)}) "
                    f"{self.column_list} FROM {stage} ORDER BY {', '.join(keys + order + ['_dart_seq DESC'])}")
        cur.execute(f"TRUNCATE {stage}")

    def _swap(self, cur: psycopg.Cursor[Any], fresh: str) -> None:
        cur.execute(f"DROP TABLE {self.target}")
        cur.execute(f"ALTER TABLE {fresh} RENAME TO {quote(self.table)}")
        if self.dataset.primary_keys:
            cur.execute(f"ALTER TABLE {self.target} RENAME CONSTRAINT {quote(self._fresh_name + '_pkey')} "
                        f"TO {quote(self.table + '_pkey')}")

    # -- one file ----------------------------------------------------------------------------------------

    def _records(self, path: str, skip: set[int]) -> Iterator[tuple[int, list[str | None]]]:
        for number, values in read_rows(self.dataset, self.s3, path):
            if number not in skip:
                yield number, values

    def _copy_file(self, cur: psycopg.Cursor[Any], into: str, path: str) -> int:
        """COPY the file's rows: its own bytes when the dataset allows (raw_copy_options), else or if that
        fails row by row; a bad row within max_errors is skipped by copying the file again without it (rolled
        back to a savepoint), so the common case streams each file exactly once."""
        if self.raw_options is not None:
            try:
                with self.conn.transaction():
                    return self._copy_raw(cur, into, path, self.raw_options)
            except _RAW_REFUSED as exc:
                cause = str(exc).strip().split("\n")[0]
                log.info("%s: read row by row (its bytes as they are: %s)", path, cause)
        skip: set[int] = set()
        while True:
            try:
                with self.conn.transaction():
                    return self._copy_once(cur, into, path, skip)
            except RowError as exc:
                self._count_error(exc, skip)
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
                self._count_error(self._row_error(exc, path, skip), skip)

    def _copy_raw(self, cur: psycopg.Cursor[Any], into: str, path: str, options: str) -> int:
        """The decompressed file straight into COPY, less its header rows: PostgreSQL parses it, this process
        only moves blocks (the row reader's Python parsing is what made loads CPU-bound)."""
        with s3_hook.open_object(self.s3, path, self.dataset.compression) as raw:
            for _ in range(self.dataset.num_header_rows):
                raw.readline()
            with cur.copy(f"COPY {into} ({self.column_list}) FROM STDIN WITH ({options})",
                          writer=FlushingWriter(cur)) as copy:
                tail = b"\n"  # the last bytes copied; the data starts a line
                while block := raw.read(RAW_BLOCK):
                    if _end_marker(tail + block[:3]) or _end_marker(block):
                        raise _EndMarker(path)
                    copy.write(block)
                    tail = (tail + block[-3:])[-3:]
                if tail.endswith(b"\n\\."):
                    raise _EndMarker(path)
        return int(cur.rowcount)

    def _copy_once(self, cur: psycopg.Cursor[Any], into: str, path: str, skip: set[int]) -> int:
        rows = 0
        with cur.copy(f"COPY {into} ({self.column_list}) FROM STDIN", writer=FlushingWriter(cur)) as copy:
            for number, values in self._records(path, skip):
                try:
                    values = self.converter.convert(values, number, path)
                except RowError as exc:
                    if len(self.result.errors) >= self.options.max_errors:
                        raise
                    self.result.errors.append(str(exc))
                    log.warning("skipped: %s", exc)
                    skip.add(number)
                    continue
                copy.write_row(values)
                rows += 1
        return rows

    def _count_error(self, exc: RowError, skip: set[int]) -> None:
        if len(self.result.errors) >= self.options.max_errors or exc.row in skip:
            raise exc
        self.result.errors.append(str(exc))
        log.warning("skipped: %s", exc)
        skip.add(exc.row)

    def _row_error(self, exc: psycopg.Error, path: str, skip: set[int]) -> RowError:
        """PostgreSQL's refusal of a COPY line as the file's row, column and value."""
        context = _COPY_CONTEXT.search(exc.diag.context or "")
        if context is None:
            raise exc
        line, column_name, value = int(context.group(1)), context.group(2), context.group(3)
        number = next((n for i, (n, _) in enumerate(self._records(path, skip), start=1) if i == line), line)
        column = next((c for c in self.columns if c.name == column_name), None)
        primary = exc.diag.message_primary or str(exc)
        if isinstance(exc, psycopg.errors.NotNullViolation):
            reason = "NULL in a column that is not nullable"
        elif value is not None and "too long" not in primary:
            reason = f'invalid value "{value}"'
        else:
            detail = exc.diag.message_detail
            reason = primary + (f" ({detail})" if detail else "") + (f': "{value}"' if value is not None else "")
        return RowError(number, path, reason, column)
