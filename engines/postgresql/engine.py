"""The postgresql_engine's actions, each a short function over the PostgreSQL hook and the S3 hook:
execute_sql, data_check, load_dataset, consume_subscription and copy_to_s3 (``COPY ... TO STDOUT`` streamed
into an S3 multipart upload)."""

from __future__ import annotations

import logging
import zlib
from typing import Any

import psycopg

from engines.data import s3 as s3_hook
from engines.data.datasets import Dataset
from engines.postgresql import hook
from engines.postgresql.definition import NAME
from engines.postgresql.load import Loader, LoadOptions, LoadResult, consumed_paths, ensure_tracking
from engines.runner import dispatch
from engines.sdk import ActionContext, ActionFailure, DartClient

log = logging.getLogger("dart.engine.postgresql")


def _connect(context: ActionContext) -> psycopg.Connection[Any]:
    return hook.connect(hook.connection_args(context.datastore), hook.schema_of(context))


def _sql_failure(exc: psycopg.Error) -> ActionFailure:
    return ActionFailure(f"SQL error: {hook.pg_cause(exc)}")


def execute_sql(context: ActionContext, client: DartClient) -> None:
    with _connect(context) as conn:
        try:
            with conn.transaction():
                conn.execute(context.action_args["sql_script"])  # no parameters: several statements may run
        except psycopg.Error as exc:
            raise _sql_failure(exc) from exc
    client.report_progress(context.action_id, 1.0)


def data_check(context: ActionContext, client: DartClient) -> None:
    """Passes when the first column of the (last statement's) first row is truthy."""
    with _connect(context) as conn:
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


def _options(context: ActionContext, subscription_id: str | None = None) -> LoadOptions:
    args = context.action_args
    return LoadOptions(schema=args.get("target_schema_name") or hook.schema_of(context),
                       table=args.get("target_table_name") or None, max_errors=int(args.get("max_errors") or 0),
                       batch_size=int(args.get("batch_size") or 0),
                       truncate_columns=args.get("truncate_columns") is not False, subscription_id=subscription_id)


def _load(context: ActionContext, client: DartClient, dataset: Dataset, files: list[tuple[str, int]],
          options: LoadOptions) -> LoadResult:
    s3 = s3_hook.client()

    def progress(done: int, total: int) -> None:
        client.report_progress(context.action_id, round(0.95 * done / total, 4))

    with _connect(context) as conn:
        try:
            result = Loader(conn, s3, context.action_id, dataset, options, progress).run(files)
        except psycopg.Error as exc:
            raise _sql_failure(exc) from exc
    log.info("loaded %d row(s) from %d file(s) into %s%s", result.rows, result.files, result.target,
             " (by an earlier run of this action)" if result.already_loaded else "")
    client.report_progress(context.action_id, 1.0, {
        "target": result.target, "files": result.files, "rows": result.rows,
        "skipped_rows": len(result.errors), "errors": result.errors[:20]})
    return result


def load_dataset(context: ActionContext, client: DartClient) -> None:
    args = context.action_args
    dataset = Dataset.from_api(client.get(f"/dataset/{args['dataset_id']}"))
    files = list(s3_hook.list_range(s3_hook.client(), s3_hook.resolve_range(dataset.location, args)))
    _load(context, client, dataset, files, _options(context))


def consume_subscription(context: ActionContext, client: DartClient) -> None:
    """Loads exactly the elements assigned to this action, less those an earlier action already loaded (its
    check-in lost); the elements are CONSUMED only if the load committed."""
    subscription_id = str(context.action_args["subscription_id"])
    subscription = client.get(f"/subscription/{subscription_id}")
    dataset = Dataset.from_api(client.get(f"/dataset/{subscription['data']['dataset_id']}"))
    elements = sorted((e["s3_path"], int(e.get("file_size") or 0))
                      for e in client.subscription_elements(context.action_id))
    with _connect(context) as conn:
        ensure_tracking(conn)
        done = consumed_paths(conn, subscription_id)
    files = [e for e in elements if e[0] not in done]
    if len(files) < len(elements):
        log.info("%d element(s) were loaded by an earlier action", len(elements) - len(files))
    _load(context, client, dataset, files, _options(context, subscription_id))
    context.consume_subscription_state = "SUCCESS"


def copy_to_s3(context: ActionContext, client: DartClient) -> None:
    """``COPY (statement) TO STDOUT`` as CSV, gzipped on the fly, into one multipart upload of
    ``<destination>000[.gz]`` (Redshift's UNLOAD ... PARALLEL OFF names): memory stays at one part."""
    args = context.action_args
    gzip = args.get("gzip") is not False
    path = str(s3_hook.tokens(args["destination_s3_path"], s3_hook.utcnow())) + "000" + (".gz" if gzip else "")
    statement = str(args["source_sql_statement"]).strip().rstrip(";")
    options = "FORMAT csv, DELIMITER {}, HEADER {}".format(
        hook.literal(args.get("delimiter") or "\t"), "true" if args.get("header") else "false")
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS) if gzip else None
    s3 = s3_hook.client()
    with _connect(context) as conn:
        writer = s3_hook.MultipartWriter(s3, path)
        try:
            with conn.cursor() as cur:
                with cur.copy(f"COPY ({statement}) TO STDOUT WITH ({options})") as copy:
                    for chunk in copy:
                        writer.write(compressor.compress(chunk) if compressor else bytes(chunk))
                rows = cur.rowcount
            if compressor:
                writer.write(compressor.flush())
            conn.rollback()
        except psycopg.Error as exc:
            writer.abort()
            raise _sql_failure(exc) from exc
        except BaseException:
            writer.abort()
            raise
        writer.close()
    log.info("wrote %d row(s), %d bytes, to %s", rows, writer.bytes_written, path)
    client.report_progress(context.action_id, 1.0, {"s3_path": path, "rows": rows, "bytes": writer.bytes_written})


HANDLER = dispatch(NAME, {"execute_sql": execute_sql, "data_check": data_check, "load_dataset": load_dataset,
                          "consume_subscription": consume_subscription, "copy_to_s3": copy_to_s3})
