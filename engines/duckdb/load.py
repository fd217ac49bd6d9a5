"""Loading a dataset's files into a DuckDB table exactly once: rows parsed by the shared dataset layer, handed
to DuckDB as Arrow batches it casts to the columns' types, inside one transaction that also records the action
and each file in dart_tracking, so a re-run never duplicates rows and a killed one leaves nothing behind. Load
types mean what they mean in the postgresql engine (engines.postgresql.load): INSERT, MERGE, RELOAD_ALL,
RELOAD_LAST."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv

from engines.data import s3 as s3_hook
from engines.data.datasets import Column, Dataset, RowError, ValueConverter
from engines.data.loads import LoadOptions, LoadResult, files_to_load
from engines.data.readers import DataFileError, read_rows
from engines.duckdb.hook import cause
from engines.postgresql.hook import literal, quote

log = logging.getLogger("dart.engine.duckdb")

BATCH_ROWS = 50_000  # rows per Arrow batch: memory stays at a few MiB whatever the file's size
TRACKING_SCHEMA = "dart_tracking"
TRACKING_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {TRACKING_SCHEMA};
CREATE TABLE IF NOT EXISTS {TRACKING_SCHEMA}.loads (
    action_id VARCHAR PRIMARY KEY, target VARCHAR NOT NULL, load_type VARCHAR NOT NULL,
    files INTEGER NOT NULL,
    rows BIGINT NOT NULL, skipped_rows INTEGER NOT NULL, loaded_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS {TRACKING_SCHEMA}.loaded_files (
    action_id VARCHAR NOT NULL, s3_path VARCHAR NOT NULL, subscription_id VARCHAR, target VARCHAR NOT NULL,
    rows BIGINT NOT NULL, loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (action_id, s3_path));
"""
STAGE = "_dart_stage"
BATCH = "_dart_batch"
# Bytes of CSV Arrow parses into one batch (about 10,000 rows of 100 bytes). Arrow reads blocks ahead, so its
# memory is a multiple of this: ~70 MiB at 1 MiB, ~200 at 4 MiB.
ARROW_BLOCK = 1024 * 1024
LOAD_MEMORY_LIMIT = "64MB"  # DuckDB's memory_limit while a load runs (Loader._limit_memory)


class _ArrowRefused(Exception):
    """A file Arrow's CSV reader or DuckDB's casts did not take as it is: the load starts again, row by row."""


# What makes a file's Arrow path give way to the row reader: Arrow's refusals (a row of the wrong width, text
# that is not UTF-8), DuckDB's (a value it cannot cast, NULL in a NOT NULL column, a duplicate key, or any of
# the others as it reads the batches), and the decompression's. The row reader then loads the file if it can, or names the row, column and value.
_ARROW_REFUSED = (pa.ArrowException, duckdb.Error, zlib.error, EOFError, OSError, UnicodeError, DataFileError)


def arrow_csv_options(dataset: Dataset, converter: ValueConverter, truncate: bool) -> dict[str, Any] | None:
    """pyarrow.csv's options under which it splits the file's (decompressed) text into exactly the fields the
    row reader (engines.data.readers) would, or None when the dataset needs the reader: a CSV with a quote
    character (escaped by doubling it), a one-character delimiter, no partition columns, no date_pattern to
    apply, and VARCHAR lengths to truncate to (or none). Every field is text, as the row reader's; empty fields,
    quoted or not, are NULL (or the dataset's null_string is)."""
    delimiter, quote_char = dataset.delimited_by or ",", dataset.quoted_by
    if not (dataset.file_format == "TEXTFILE" and dataset.row_format in ("DELIMITED", "NONE")):
        return None
    if dataset.partitions or converter.dates or not quote_char:
        return None
    if dataset.escaped_by not in (None, "", quote_char) or len(delimiter) != 1 or len(quote_char) != 1:
        return None
    if not truncate and any(c.length for c in dataset.columns if c.data_type in ("STRING", "VARCHAR")):
        return None  # the row reader names an over-long value
    names = [f"c{i}" for i in range(len(dataset.columns))]
    return {
        "read_options": pa_csv.ReadOptions(skip_rows=dataset.num_header_rows, column_names=names,
                                           block_size=ARROW_BLOCK, use_threads=False),
        "parse_options": pa_csv.ParseOptions(delimiter=delimiter, quote_char=quote_char, double_quote=True,
                                             newlines_in_values=True, ignore_empty_lines=True),
        "convert_options": pa_csv.ConvertOptions(
            column_types={n: pa.string() for n in names}, null_values=[dataset.null_string or ""],
            strings_can_be_null=True, quoted_strings_can_be_null=True),
    }


def ensure_tracking(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(TRACKING_DDL)


def consumed_paths(conn: duckdb.DuckDBPyConnection, subscription_id: str) -> set[str]:
    """Elements of the subscription some earlier action already loaded (its check-in may have been lost)."""
    ensure_tracking(conn)
    rows = conn.execute(
        f"SELECT s3_path FROM {TRACKING_SCHEMA}.loaded_files WHERE subscription_id = ?", [subscription_id]
    ).fetchall()
    return {r[0] for r in rows}


def _definitions(columns: Sequence[Column]) -> list[str]:
    return [c.sql_definition() for c in columns]


class Loader:
    """One load: ``run`` streams ``files`` into the target inside one transaction on ``conn``."""

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        s3: Any,
        action_id: str,
        dataset: Dataset,
        options: LoadOptions,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.conn, self.s3, self.action_id, self.dataset, self.options = conn, s3, action_id, dataset, options
        self.progress = progress or (lambda done, total: None)
        self.columns = dataset.load_columns
        if not self.columns:
            raise ValueError(f"dataset {dataset.name} has no columns")
        self.table = options.table or dataset.table_name
        self.target = f"{quote(options.schema)}.{quote(self.table)}"
        self.converter = ValueConverter(self.columns, options.truncate_columns)
        self.column_list = ", ".join(quote(c.name) for c in self.columns)
        self.casts = ", ".join(f"CAST(c{i} AS {c.sql_type()})" for i, c in enumerate(self.columns))
        self.result = LoadResult(f"{options.schema}.{self.table}")
        self.sequence = 0  # MERGE: the order rows were read in, so the last one read wins a tie
        self.arrow = arrow_csv_options(dataset, self.converter, options.truncate_columns)
        self.arrow_casts = ", ".join(
            f"left(c{i}, {c.length})" if c.length and c.data_type in ("STRING", "VARCHAR")
            else f"c{i}" if c.sql_type() == "TEXT" else f"CAST(c{i} AS {c.sql_type()})"
            for i, c in enumerate(self.columns))

    def run(self, files: Sequence[tuple[str, int]]) -> LoadResult:
        load_type = self.dataset.load_type
        files = files_to_load(self.dataset, files)
        ensure_tracking(self.conn)
        restore = self._limit_memory(load_type)
        try:
            return self._transaction(files, load_type)
        except duckdb.OutOfMemoryException as exc:
            if restore is None:
                raise
            # Under the load's limit something would not fit (an index it could not see coming): the load
            # starts again, as a refused file's does, with DuckDB's own limit.
            log.info("the load did not fit in %s (%s); loading again without that limit", LOAD_MEMORY_LIMIT,
                     cause(exc))
            self._set_memory_limit(restore)
            restore = None
            self.sequence, self.result = 0, LoadResult(self.result.target)
            return self._transaction(files, load_type)
        finally:
            if restore is not None:
                try:
                    self._set_memory_limit(restore)
                except duckdb.Error:  # the connection is gone: the limit went with it
                    log.warning("could not restore memory_limit to %s", restore, exc_info=True)

    def _limit_memory(self, load_type: str) -> str | None:
        """DuckDB's memory_limit lowered to LOAD_MEMORY_LIMIT for this load; returns the limit to restore, or
        None when the load keeps DuckDB's own: a MERGE, or a target with an index, a primary key or a unique
        constraint (an index that outgrows the limit would fail the load; it stays in memory until a
        checkpoint).

        Why: every block the load writes stays in DuckDB's buffer pool (its BASE_TABLE memory equals the
        table's size: 20 MiB for 1 M of the benchmark's rows, 104 for 5 M) until memory_limit (by default 80 %
        of the machine's memory) makes it evict one. They are on disk already, so evicting them costs
        nothing; under this limit the load's peak RSS stays flat with the rows (252 -> 283 MiB from 1 M to 5 M
        rows, against 306 -> 406), and any other operator spills to DuckDB's temporary directory. Nothing
        is committed differently: the load is still one transaction."""
        if load_type == "MERGE" or self.dataset.primary_keys:
            return None
        schema, table = self.options.schema, (self.table if load_type == "INSERT" else None)
        if table is not None and self.conn.execute(
            "SELECT (SELECT count(*) FROM duckdb_indexes() WHERE schema_name = ? AND table_name = ?)"
            " + (SELECT count(*) FROM duckdb_constraints() WHERE schema_name = ? AND table_name = ?"
            " AND constraint_type IN ('PRIMARY KEY', 'UNIQUE'))", [schema, table, schema, table]
        ).fetchone()[0]:  # type: ignore[index]
            return None
        current = self.conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # type: ignore[index]
        self._set_memory_limit(LOAD_MEMORY_LIMIT)
        return str(current)

    def _set_memory_limit(self, limit: str) -> None:
        self.conn.execute(f"SET memory_limit = {literal(limit)}")

    def _transaction(self, files: Sequence[tuple[str, int]], load_type: str) -> LoadResult:
        # The file's lock makes this process the only writer, so no other run of the action can interleave.
        self.conn.begin()
        try:
            self._run(files, load_type)
        except _ArrowRefused as exc:
            # DuckDB has no savepoints: the whole load starts again on the row reader, which is exact.
            self.conn.rollback()
            self._unregister()
            log.info("%s; loading row by row", exc)
            self.arrow, self.sequence = None, 0
            self.result = LoadResult(self.result.target)
            return self._transaction(files, load_type)
        except BaseException:
            self.conn.rollback()
            self._unregister()
            raise
        self.conn.commit()
        return self.result

    def _unregister(self) -> None:
        try:
            self.conn.unregister(BATCH)
        except duckdb.Error:
            log.debug("no batch to unregister", exc_info=True)

    def _run(self, files: Sequence[tuple[str, int]], load_type: str) -> None:
        conn = self.conn
        done = conn.execute(
            f"SELECT files, rows FROM {TRACKING_SCHEMA}.loads WHERE action_id = ?", [self.action_id]
        ).fetchone()
        if done is not None:
            self.result.files, self.result.rows, self.result.already_loaded = done[0], done[1], True
            return
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.options.schema)}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {self.target} ({', '.join(self._table_body())})")
        into = self._prepare(load_type)
        size = (
            self.options.batch_size
            if load_type == "MERGE" and self.options.batch_size
            else max(1, len(files))
        )
        for start in range(0, len(files), size):
            for path, _ in files[start : start + size]:
                rows = self._copy_file(into, path)
                conn.execute(
                    f"INSERT INTO {TRACKING_SCHEMA}.loaded_files (action_id, s3_path, subscription_id, "
                    "target, rows) VALUES (?, ?, ?, ?, ?)",
                    [self.action_id, path, self.options.subscription_id, self.result.target, rows],
                )
                self.result.files += 1
                self.result.rows += rows
                self.progress(self.result.files, len(files))
            if load_type == "MERGE":
                self._merge()
        if load_type in ("RELOAD_ALL", "RELOAD_LAST"):
            conn.execute(f"DROP TABLE {self.target}")
            conn.execute(f"ALTER TABLE {into} RENAME TO {quote(self.table)}")
        if load_type == "MERGE":
            conn.execute(f"DROP TABLE {STAGE}")
        conn.execute(
            f"INSERT INTO {TRACKING_SCHEMA}.loads (action_id, target, load_type, files, rows, skipped_rows)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                self.action_id,
                self.result.target,
                load_type,
                self.result.files,
                self.result.rows,
                len(self.result.errors),
            ],
        )

    def _table_body(self) -> list[str]:
        keys = self.dataset.primary_keys
        return _definitions(self.columns) + ([f"PRIMARY KEY ({', '.join(map(quote, keys))})"] if keys else [])

    def _prepare(self, load_type: str) -> str:
        """Where rows go: the target (INSERT), a temporary stage (MERGE), or a fresh table that replaces the
        target at commit (RELOAD_*), so readers see the old rows until then."""
        if load_type == "MERGE":
            self.conn.execute(
                f"CREATE TEMP TABLE {STAGE} ({', '.join(_definitions(self.columns))}, _dart_seq BIGINT)"
            )
            return STAGE
        if load_type in ("RELOAD_ALL", "RELOAD_LAST"):
            fresh = f"{quote(self.options.schema)}.{quote(self.table[:50] + '__dart_new')}"
            self.conn.execute(f"DROP TABLE IF EXISTS {fresh}")
            self.conn.execute(f"CREATE TABLE {fresh} ({', '.join(self._table_body())})")
            return fresh
        return self.target

    def _merge(self) -> None:
        keys = [quote(k) for k in self.dataset.upsert_keys]
        match = " AND ".join(f"{self.target}.{k} = {STAGE}.{k}" for k in keys)
        self.conn.execute(f"DELETE FROM {self.target} USING {STAGE} WHERE {match}")
        order = [quote(k.split()[0]) + " " + k.split()[1] for k in self.dataset.batch_merge_sort_keys]
        self.conn.execute(
            f"INSERT INTO {self.target} ({self.column_list}) SELECT {self.column_list} FROM {STAGE} "
            f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} "
            f"ORDER BY {', '.join(order + ['_dart_seq DESC'])}) = 1"
        )
        self.conn.execute(f"DELETE FROM {STAGE}")

    # -- one file ----------------------------------------------------------------------------------------

    def _copy_file(self, into: str, path: str) -> int:
        if self.arrow is not None:
            try:
                return self._copy_arrow(into, path, self.arrow)
            except duckdb.OutOfMemoryException:
                raise  # not the file's fault: run() decides
            except _ARROW_REFUSED as exc:
                cause_text = str(exc).strip().split("\n")[0]
                raise _ArrowRefused(f"{path} was not taken as it is ({cause_text})") from exc
        rows = 0
        values: list[list[str | None]] = [[] for _ in self.columns]
        numbers: list[int] = []
        refused: list[
            RowError
        ] = []  # rows the converter refused, judged with the batch's others in row order
        for number, record in read_rows(self.dataset, self.s3, path):
            try:
                record = self.converter.convert(record, number, path)
            except RowError as exc:
                refused.append(exc)
            else:
                for column, value in zip(values, record):
                    column.append(value)
                numbers.append(number)
            if len(numbers) >= BATCH_ROWS or len(refused) > self.options.max_errors - len(self.result.errors):
                rows += self._insert(into, path, values, numbers, refused)
                values, numbers, refused = [[] for _ in self.columns], [], []
        if numbers or refused:
            rows += self._insert(into, path, values, numbers, refused)
        return rows

    def _copy_arrow(self, into: str, path: str, options: dict[str, Any]) -> int:
        """The decompressed file parsed by Arrow's CSV reader (C++) into batches of text columns that DuckDB
        casts and inserts in one statement, pulling the batches as it goes: no Python per row (the row
        reader's parsing is what made loads CPU-bound). One statement, not one a batch: DuckDB's memory grew
        with the number of INSERTs in the transaction (770 MiB against 330 for 3 M rows)."""
        seq = ", _dart_seq" if into == STAGE else ""
        read = 0

        def batches(reader: pa_csv.CSVStreamingReader) -> Any:
            nonlocal read
            for batch in reader:
                if seq:  # MERGE: the order rows were read in
                    batch = pa.RecordBatch.from_arrays(
                        [*batch.columns, pa.array(range(self.sequence, self.sequence + batch.num_rows),
                                                  pa.int64())], names=[*batch.schema.names, "_dart_seq"])
                    self.sequence += batch.num_rows
                read += batch.num_rows
                yield batch

        with s3_hook.open_object(self.s3, path, self.dataset.compression) as raw:
            try:
                reader = pa_csv.open_csv(raw, **options)
            except pa.ArrowInvalid as exc:
                if str(exc).startswith("Empty CSV file"):  # an empty object (or its header alone): no rows
                    return 0
                raise
            schema = reader.schema.append(pa.field("_dart_seq", pa.int64())) if seq else reader.schema
            self.conn.register(BATCH, pa.RecordBatchReader.from_batches(schema, batches(reader)))
            # A failure aborts the transaction: run() rolls back and unregisters.
            self.conn.execute(f"INSERT INTO {into} ({self.column_list}{seq}) SELECT {self.arrow_casts}{seq} "
                              f"FROM {BATCH}")
            self.conn.unregister(BATCH)
        return read

    def _skip(self, exc: RowError) -> None:
        if len(self.result.errors) >= self.options.max_errors:
            raise exc
        self.result.errors.append(str(exc))
        log.warning("skipped: %s", exc)

    def _insert(
        self,
        into: str,
        path: str,
        values: list[list[str | None]],
        numbers: list[int],
        refused: list[RowError],
    ) -> int:
        """One batch: its bad rows found first (a failed statement would abort DuckDB's transaction), each
        skipped within max_errors, then the rest cast and inserted in one statement."""
        arrays = {f"c{i}": pa.array(v, pa.string()) for i, v in enumerate(values)}
        arrays["_dart_row"] = pa.array(numbers, pa.int64())
        arrays["_dart_seq"] = pa.array(range(self.sequence, self.sequence + len(numbers)), pa.int64())
        self.sequence += len(numbers)
        self.conn.register(BATCH, pa.table(arrays))
        try:
            bad = self._bad_rows(path) if numbers else []
            for error in sorted(bad + refused, key=lambda e: e.row):
                self._skip(error)
            where = f" WHERE _dart_row NOT IN ({', '.join(str(e.row) for e in bad)})" if bad else ""
            seq = (", _dart_seq", ", _dart_seq") if into == STAGE else ("", "")
            if len(bad) == len(numbers):
                return 0
            try:
                self.conn.execute(
                    f"INSERT INTO {into} ({self.column_list}{seq[0]}) SELECT {self.casts}{seq[1]} "
                    f"FROM {BATCH}{where}"
                )
            except duckdb.ConstraintException as exc:
                raise ValueError(f"{path}: {cause(exc)}") from exc
        finally:
            self.conn.unregister(BATCH)
        return len(numbers) - len(bad)

    def _bad_rows(self, path: str) -> list[RowError]:
        """The batch's rows DuckDB could not cast (or whose text is longer than its VARCHAR when truncating is
        off), first column first, up to one past what max_errors still allows."""
        checks: list[tuple[Column, str, str]] = []
        for i, column in enumerate(self.columns):
            sql_type = column.sql_type()
            if sql_type != "TEXT" and not sql_type.startswith("VARCHAR"):
                checks.append(
                    (column, f"c{i} IS NOT NULL AND TRY_CAST(c{i} AS {sql_type}) IS NULL", "invalid")
                )
            elif column.length and not self.options.truncate_columns:
                checks.append((column, f"length(c{i}) > {column.length}", "too long"))
        if not checks:
            return []
        index = {c.name: i for i, c in enumerate(self.columns)}
        flags = ", ".join(f"({condition})" for _, condition, _ in checks)
        values = ", ".join(f"c{index[c.name]}" for c, _, _ in checks)
        limit = self.options.max_errors - len(self.result.errors) + 1
        found = self.conn.execute(
            f"SELECT _dart_row, {flags}, {values} FROM {BATCH} "
            f"WHERE {' OR '.join(f'({c})' for _, c, _ in checks)} "
            f"ORDER BY _dart_row LIMIT {limit}"
        ).fetchall()
        errors = []
        for row in found:
            at = next(i for i in range(len(checks)) if row[1 + i])
            column, _, kind = checks[at]
            value = row[1 + len(checks) + at]
            reason = (
                f'invalid value "{value}"'
                if kind == "invalid"
                else f'value too long for VARCHAR({column.length}): "{value}"'
            )
            errors.append(RowError(row[0], path, reason, column))
        return errors
