"""The postgresql_engine's actions, each a short function over the PostgreSQL hook and the S3 hook:
execute_sql, data_check, load_dataset, consume_subscription and copy_to_s3 (``COPY ... TO STDOUT`` streamed
into an S3 multipart upload)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import pq
from psycopg.abc import PQGen
from psycopg.generators import fetch_many
from psycopg.waiting import Wait

from engines.data import loads
from engines.data import s3 as s3_hook
from engines.data.datasets import Dataset
from engines.data.loads import LoadOptions, LoadResult
from engines.postgresql import hook
from engines.postgresql.definition import NAME
from engines.postgresql.load import Loader, consumed_paths, ensure_tracking
from engines.runner import dispatch
from engines.sdk import ActionContext, ActionFailure, DartClient

log = logging.getLogger("dart.engine.postgresql")
WAIT_R = Wait.R


# How an action reaches its database: the redshift engine runs these same handlers with its own connector.
Connector = Callable[[ActionContext], psycopg.Connection[Any]]


def _connect(context: ActionContext) -> psycopg.Connection[Any]:
    return hook.connect(hook.connection_args(context.datastore), hook.schema_of(context))


def _sql_failure(exc: psycopg.Error) -> ActionFailure:
    return ActionFailure(f"SQL error: {hook.pg_cause(exc)}")


def execute_sql(context: ActionContext, client: DartClient, connect: Connector = _connect) -> None:
    with connect(context) as conn:
        try:
            with conn.transaction():
                conn.execute(context.action_args["sql_script"])  # no parameters: several statements may run
        except psycopg.Error as exc:
            raise _sql_failure(exc) from exc
    client.report_progress(context.action_id, 1.0)


def data_check(context: ActionContext, client: DartClient, connect: Connector = _connect) -> None:
    """Passes when the first column of the (last statement's) first row is truthy."""
    with connect(context) as conn:
        try:
            cur = conn.execute(context.action_args["sql_script"])
            row = cur.fetchone() if cur.description else None
            while cur.nextset():
                row = cur.fetchone() if cur.description else row
            conn.rollback()
        except psycopg.Error as exc:
            raise _sql_failure(exc) from exc
    if row is None or not row[0]:
        raise ActionFailure("Data check failed")
    client.report_progress(context.action_id, 1.0)


def _load(context: ActionContext, client: DartClient, dataset: Dataset, files: loads.Files,
          options: LoadOptions) -> LoadResult:
    with _connect(context) as conn:
        try:
            result = Loader(conn, s3_hook.client(), context.action_id, dataset, options,
                            loads.progress_reporter(client, context.action_id)).run(files)
        except psycopg.Error as exc:
            raise _sql_failure(exc) from exc
    log.info("loaded %d row(s) from %d file(s) into %s%s", result.rows, result.files, result.target,
             " (by an earlier run of this action)" if result.already_loaded else "")
    loads.report_load(client, context.action_id, result)
    return result


def load_dataset(context: ActionContext, client: DartClient) -> None:
    dataset, files = loads.dataset_files(client, context.action_args)
    _load(context, client, dataset, files, loads.load_options(context.action_args, hook.schema_of(context)))


def consume_subscription(context: ActionContext, client: DartClient) -> None:
    """Loads exactly the elements assigned to this action, less those an earlier action already loaded (its
    check-in lost); the elements are CONSUMED only if the load committed."""
    subscription_id = str(context.action_args["subscription_id"])
    dataset, elements = loads.subscription_files(client, context.action_id, subscription_id)
    with _connect(context) as conn:
        ensure_tracking(conn)
        files = loads.not_loaded(elements, consumed_paths(conn, subscription_id))
    if len(files) < len(elements):
        log.info("%d element(s) were loaded by an earlier action", len(elements) - len(files))
    _load(context, client, dataset, files,
          loads.load_options(context.action_args, hook.schema_of(context), subscription_id))
    context.consume_subscription_state = "SUCCESS"


def copy_to_s3(context: ActionContext, client: DartClient) -> None:
    """``COPY (statement) TO STDOUT`` as CSV, gzipped on the fly, into one multipart upload of
    ``<destination>000[.gz]`` (Redshift's UNLOAD ... PARALLEL OFF names): memory stays at a few parts.

    COPY sends one message a row; they are gathered into 1 MiB blocks straight from libpq's buffer
    (_copy_out), a quarter of the CPU of psycopg's row-by-row reads, which a bare ``COPY TO STDOUT`` into a
    file pays. Compression runs in a thread of its own and parts are uploaded in the background
    (engines.data.s3)."""
    args = context.action_args
    gzip = args.get("gzip") is not False
    path = loads.destination(args, ".gz" if gzip else "")
    statement = str(args["source_sql_statement"]).strip().rstrip(";")
    options = "FORMAT csv, DELIMITER {}, HEADER {}".format(
        hook.literal(args.get("delimiter") or "\t"), "true" if args.get("header") else "false")
    s3 = s3_hook.client()
    with _connect(context) as conn:
        writer = s3_hook.MultipartWriter(s3, path)
        sink: Any = s3_hook.GzipWriter(writer) if gzip else writer
        try:
            with conn.cursor() as cur, cur.copy(f"COPY ({statement}) TO STDOUT WITH ({options})") as copy:
                rows = _copy_out(conn, copy, sink.write, s3_hook.READ_SIZE)
            if gzip:
                sink.close()
            conn.rollback()
        except psycopg.Error as exc:
            _discard(sink, writer)
            raise _sql_failure(exc) from exc
        except BaseException:
            _discard(sink, writer)
            raise
        writer.close()
    log.info("wrote %d row(s), %d bytes, to %s", rows, writer.bytes_written, path)
    client.report_progress(context.action_id, 1.0, {"s3_path": path, "rows": rows, "bytes": writer.bytes_written})



def _copy_out(conn: psycopg.Connection[Any], copy: psycopg.Copy, write: Callable[[bytes], Any],
              size: int) -> int:
    """A ``COPY ... TO STDOUT``'s data handed to ``write`` in blocks of about ``size`` bytes; returns COPY's
    row count. The rows are taken from libpq's buffer in a tight loop (``get_copy_data`` without waiting), and
    only an empty buffer waits for the socket, through psycopg's ``wait`` (interruptible: a Ctrl-C cancels the
    query); psycopg's own ``copy.read()`` runs a generator and a wait for every row. The end is psycopg's too:
    the final result (a failure raised as psycopg raises it), and the Copy marked done so that its exit does
    not read again."""
    pgconn = conn.pgconn
    get = pgconn.get_copy_data

    def block() -> PQGen[tuple[bytes, int | None]]:
        data = bytearray()
        while len(data) < size:
            nbytes, row = get(1)
            if nbytes > 0:
                data += row
            elif nbytes == 0:  # libpq's buffer is empty: wait for the socket
                while not (yield WAIT_R):
                    continue
                pgconn.consume_input()
            else:  # the end (or the query's failure): COPY's final result
                copy._finished = True  # libpq has ended the COPY: its exit must not read again
                results = yield from fetch_many(pgconn)
                if not results:
                    raise psycopg.OperationalError("COPY ended without a result")
                if failed := [r for r in results if r.status != pq.ExecStatus.COMMAND_OK]:
                    raise psycopg.errors.error_from_result(failed[0], encoding=conn.info.encoding)
                return bytes(data), results[0].command_tuples or 0
        return bytes(data), None

    while True:
        data, rows = conn.wait(block())
        if data:
            write(data)
        if rows is not None:
            return rows


def _discard(sink: Any, writer: s3_hook.MultipartWriter) -> None:
    """A failed copy_to_s3: its gzip thread stopped (its own failure is the lesser news) and the upload
    aborted."""
    if sink is not writer:
        try:
            sink.close()
        except Exception:  # the failure being raised is the one to report
            log.debug("the gzip thread failed too", exc_info=True)
    writer.abort()


HANDLER = dispatch(NAME, {"execute_sql": execute_sql, "data_check": data_check, "load_dataset": load_dataset,
                          "consume_subscription": consume_subscription, "copy_to_s3": copy_to_s3})
