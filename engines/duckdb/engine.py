"""The duckdb_engine's actions, each a short function over the DuckDB hook and the S3 hook: execute_sql,
data_check, load_dataset, consume_subscription (engines.duckdb.load) and copy_to_s3 (the query's Arrow batches
written as CSV or Parquet straight into an S3 multipart upload)."""

from __future__ import annotations

import logging
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from engines.data import loads
from engines.data import s3 as s3_hook
from engines.data.datasets import Dataset
from engines.duckdb import hook
from engines.duckdb.definition import NAME
from engines.duckdb.load import Loader, consumed_paths
from engines.runner import dispatch
from engines.sdk import ActionContext, ActionFailure, DartClient

log = logging.getLogger("dart.engine.duckdb")
DEFAULT_SCHEMA = "main"
EXPORT_BATCH_ROWS = 65_536


def _connect(context: ActionContext, client: DartClient) -> duckdb.DuckDBPyConnection:
    path, timeout = hook.options_of(context)
    conn = hook.connect(path, timeout)
    url = f"duckdb://{path}"
    if context.datastore["data"].get("connection_url") != url:
        client.patch_datastore(context.datastore_id, connection_url=url)  # where the mart is, for its users
    return conn


def _sql_failure(exc: duckdb.Error) -> ActionFailure:
    return ActionFailure(f"SQL error: {hook.cause(exc)}")


def execute_sql(context: ActionContext, client: DartClient) -> None:
    with _connect(context, client) as conn:
        try:
            conn.begin()
            conn.execute(context.action_args["sql_script"])  # several statements may run
            conn.commit()
        except duckdb.Error as exc:
            conn.rollback()
            raise _sql_failure(exc) from exc
    client.report_progress(context.action_id, 1.0)


def data_check(context: ActionContext, client: DartClient) -> None:
    """Passes when the first column of the (last statement's) first row is truthy."""
    with _connect(context, client) as conn:
        try:
            conn.begin()
            cursor = conn.execute(context.action_args["sql_script"])
            row = cursor.fetchone() if cursor.description else None
            conn.rollback()
        except duckdb.Error as exc:
            conn.rollback()
            raise _sql_failure(exc) from exc
    if row is None or not row[0]:
        raise ActionFailure("Data check failed")
    client.report_progress(context.action_id, 1.0)


def _load(
    context: ActionContext,
    client: DartClient,
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    files: loads.Files,
    options: loads.LoadOptions,
) -> None:
    try:
        result = Loader(
            conn,
            s3_hook.client(),
            context.action_id,
            dataset,
            options,
            loads.progress_reporter(client, context.action_id),
        ).run(files)
    except duckdb.Error as exc:
        raise _sql_failure(exc) from exc
    log.info(
        "loaded %d row(s) from %d file(s) into %s%s",
        result.rows,
        result.files,
        result.target,
        " (by an earlier run of this action)" if result.already_loaded else "",
    )
    loads.report_load(client, context.action_id, result)


def load_dataset(context: ActionContext, client: DartClient) -> None:
    dataset, files = loads.dataset_files(client, context.action_args)
    with _connect(context, client) as conn:
        _load(context, client, conn, dataset, files, loads.load_options(context.action_args, DEFAULT_SCHEMA))


def consume_subscription(context: ActionContext, client: DartClient) -> None:
    """Loads exactly the elements assigned to this action, less those an earlier action already loaded (its
    check-in lost); the elements are CONSUMED only if the load committed."""
    subscription_id = str(context.action_args["subscription_id"])
    dataset, elements = loads.subscription_files(client, context.action_id, subscription_id)
    with _connect(context, client) as conn:
        files = loads.not_loaded(elements, consumed_paths(conn, subscription_id))
        if len(files) < len(elements):
            log.info("%d element(s) were loaded by an earlier action", len(elements) - len(files))
        _load(
            context,
            client,
            conn,
            dataset,
            files,
            loads.load_options(context.action_args, DEFAULT_SCHEMA, subscription_id),
        )
    context.consume_subscription_state = "SUCCESS"


def _write(reader: pa.RecordBatchReader, sink: Any, args: dict[str, Any], parquet: bool) -> int:
    """Every batch of the query into ``sink``; returns the row count."""
    rows = 0
    if parquet:
        with pq.ParquetWriter(sink, reader.schema, compression="snappy") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows
    options = pa_csv.WriteOptions(
        include_header=bool(args.get("header")),
        delimiter=args.get("delimiter") or "\t",
        quoting_style="needed",
    )
    with pa_csv.CSVWriter(sink, reader.schema, write_options=options) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def copy_to_s3(context: ActionContext, client: DartClient) -> None:
    """The query's rows as one object, ``<destination>000[.gz]`` (CSV) or ``<destination>000.parquet``,
    written batch by batch into a multipart upload: memory stays at one part and one batch."""
    args = context.action_args
    parquet = args.get("file_format") == "PARQUET"
    gzip = not parquet and args.get("gzip") is not False
    path = loads.destination(args, ".parquet" if parquet else ".gz" if gzip else "")
    statement = str(args["source_sql_statement"]).strip().rstrip(";")
    with _connect(context, client) as conn:
        writer = s3_hook.MultipartWriter(s3_hook.client(), path)
        try:
            relation = conn.sql(
                statement
            )  # a relation streams; a DB-API result's Arrow output copies every row
            if relation is None:
                raise ActionFailure("source_sql_statement returns no rows (it must be a query)")
            reader = relation.to_arrow_reader(EXPORT_BATCH_ROWS)
            raw = pa.PythonFile(writer, mode="w")
            sink = pa.CompressedOutputStream(raw, "gzip") if gzip else raw
            rows = _write(reader, sink, args, parquet)
            sink.close()  # the gzip trailer; closing the PythonFile completes the upload
            writer.close()
        except duckdb.Error as exc:
            writer.abort()
            raise _sql_failure(exc) from exc
        except BaseException:
            writer.abort()
            raise
    log.info("wrote %d row(s), %d bytes, to %s", rows, writer.bytes_written, path)
    client.report_progress(
        context.action_id, 1.0, {"s3_path": path, "rows": rows, "bytes": writer.bytes_written}
    )


HANDLER = dispatch(
    NAME,
    {
        "execute_sql": execute_sql,
        "data_check": data_check,
        "load_dataset": load_dataset,
        "consume_subscription": consume_subscription,
        "copy_to_s3": copy_to_s3,
    },
)
