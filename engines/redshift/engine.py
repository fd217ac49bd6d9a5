"""The redshift_engine's actions, each a short function over the Redshift API hook (engines.redshift.cluster),
the PostgreSQL hook (Redshift speaks its protocol) and the S3 hook: the cluster's lifecycle, the postgresql
engine's execute_sql and data_check, COPY loads, UNLOAD, and cluster_maintenance. No Redshift runs where this
is tested: the lifecycle runs on moto's Redshift API, COPY and UNLOAD are tested as generated SQL, and the
shared SQL path on PostgreSQL (tests/engines/test_redshift_engine.py)."""

from __future__ import annotations

import functools
import logging
from typing import Any

import boto3
import psycopg

from engines.data import loads
from engines.data import s3 as s3_hook
from engines.data.datasets import Dataset
from engines.postgresql import engine as postgresql
from engines.postgresql import hook
from engines.postgresql.load import consumed_paths
from engines.redshift import cluster as cluster_hook
from engines.redshift import maintenance, sql
from engines.redshift.definition import NAME
from engines.redshift.load import Loader, ensure_tracking
from engines.runner import dispatch
from engines.sdk import ActionContext, ActionFailure, DartApiError, DartClient

log = logging.getLogger("dart.engine.redshift")
DEFAULT_PORT = 5439


def _cluster(context: ActionContext) -> cluster_hook.Cluster:
    return cluster_hook.Cluster(cluster_hook.client(), context.datastore)


def connection_args(context: ActionContext) -> dict[str, Any]:
    """libpq keywords for the cluster: the host and port start_datastore patched onto the datastore, else the
    cluster's endpoint from the Redshift API; the master user and database; the password from the
    check-out."""
    data, args = context.datastore["data"], context.datastore_args
    host, port = data.get("host"), data.get("port")
    if not host:
        host, port = _cluster(context).endpoint()
    found = {
        "host": host,
        "port": int(port or DEFAULT_PORT),
        "dbname": args.get("master_db_name") or "dart",
        "user": args.get("master_user_name") or "admin",
        "password": args.get("master_user_password"),
        "sslmode": "prefer",
        "connect_timeout": hook.CONNECT_TIMEOUT,
        "application_name": "dart redshift_engine",
    }
    return {k: v for k, v in found.items() if v is not None}


def connect(context: ActionContext) -> psycopg.Connection[Any]:
    return hook.connect(connection_args(context), what="Redshift")


def _authorization(context: ActionContext) -> sql.Authorization:
    role = context.datastore_args.get("iam_role_arn")
    if role:
        return sql.Authorization(iam_role=str(role))
    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise ActionFailure(
            "COPY and UNLOAD need AWS credentials: set the datastore's iam_role_arn or give the "
            "engine credentials"
        )
    frozen = credentials.get_frozen_credentials()
    return sql.Authorization(None, frozen.access_key, frozen.secret_key, frozen.token)


# -- the cluster ---------------------------------------------------------------------------------------------


def start_datastore(context: ActionContext, client: DartClient) -> None:
    cluster = _cluster(context)
    log.info("%s", cluster.start(context.action_args.get("snapshot_name")))
    client.report_progress(context.action_id, 0.1)
    host, port = cluster.endpoint()
    client.patch_datastore(
        context.datastore_id,
        host=host,
        port=port,
        connection_url=f"jdbc:redshift://{host}:{port}/{cluster.database}",
    )
    client.report_progress(context.action_id, 1.0, {"cluster_identifier": cluster.identifier})


def stop_datastore(context: ActionContext, client: DartClient) -> None:
    snapshot = _cluster(context).stop()
    client.report_progress(context.action_id, 1.0, {"final_snapshot": snapshot})


def create_snapshot(context: ActionContext, client: DartClient) -> None:
    snapshot = _cluster(context).create_snapshot()
    client.report_progress(context.action_id, 1.0, {"snapshot": snapshot})


# -- loads and unloads ---------------------------------------------------------------------------------------


def _load(
    context: ActionContext,
    client: DartClient,
    conn: psycopg.Connection[Any],
    dataset: Dataset,
    files: loads.Files,
    options: loads.LoadOptions,
) -> None:
    loader = Loader(
        conn,
        s3_hook.client(),
        context.action_id,
        context.datastore["data"].get("s3_artifacts_path"),
        dataset,
        options,
        context.action_args,
        _authorization(context),
        lambda: connect(context),
        loads.progress_reporter(client, context.action_id),
    )
    try:
        result = loader.run(files)
    except psycopg.Error as exc:
        raise ActionFailure(f"SQL error: {hook.pg_cause(exc)}") from exc
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
    with connect(context) as conn:
        _load(context, client, conn, dataset, files, loads.load_options(context.action_args, "public"))


def consume_subscription(context: ActionContext, client: DartClient) -> None:
    """Loads the elements assigned to this action, and the CONSUMED elements the cluster lacks (a cluster
    restored from a snapshot older than its last loads): those processed after the newest element the cluster
    tracks."""
    subscription_id = str(context.action_args["subscription_id"])
    dataset, elements = loads.subscription_files(client, context.action_id, subscription_id)
    with connect(context) as conn:
        ensure_tracking(conn)
        done = consumed_paths(conn, subscription_id)
        newest = conn.execute(
            f"SELECT s3_path FROM {sql.TRACKING_SCHEMA}.loaded_files WHERE subscription_id = %s "
            "ORDER BY loaded_at DESC, s3_path DESC LIMIT 1",
            [subscription_id],
        ).fetchone()
        conn.commit()
        replay = _processed_after(client, subscription_id, newest[0]) if newest else []
        files = loads.not_loaded(sorted(set(replay) | set(elements)), done)
        if replay:
            log.info(
                "%d consumed element(s) the cluster lacks are loaded again",
                len(loads.not_loaded(replay, done)),
            )
        _load(
            context,
            client,
            conn,
            dataset,
            files,
            loads.load_options(context.action_args, "public", subscription_id),
        )
    context.consume_subscription_state = "SUCCESS"


def _processed_after(client: DartClient, subscription_id: str, s3_path: str) -> loads.Files:
    """CONSUMED elements processed after ``s3_path`` was; none when dart has not processed it (the action that
    loaded it lost its check-in, so its elements are assigned again, not consumed)."""
    found: loads.Files = []
    while True:
        try:
            page = client.get(
                f"/subscription/{subscription_id}/elements",
                {
                    "state": "CONSUMED",
                    "processed_after_s3_path": s3_path,
                    "limit": 1000,
                    "offset": len(found),
                },
            )
        except DartApiError as exc:
            if exc.status != 400:
                raise
            log.info("no replay: %s", exc.message)
            return found
        if not page:
            return found
        found += [(e["s3_path"], int(e.get("file_size") or 0)) for e in page]


def copy_to_s3(context: ActionContext, client: DartClient) -> None:
    """UNLOAD, server-side; ALLOWOVERWRITE makes a re-run write the same keys."""
    args = context.action_args
    destination = str(s3_hook.tokens(args["destination_s3_path"], s3_hook.token_time()))
    statement = sql.unload_sql(
        args["source_sql_statement"],
        destination,
        _authorization(context),
        args.get("delimiter"),
        args.get("parallel") is not False,
        args.get("gzip") is not False,
        bool(args.get("header")),
    )
    with connect(context) as conn:
        try:
            conn.execute(statement)
            conn.commit()
        except psycopg.Error as exc:
            raise ActionFailure(f"SQL error: {hook.pg_cause(exc)}") from exc
    client.report_progress(context.action_id, 1.0, {"s3_path": destination})


HANDLER = dispatch(
    NAME,
    {
        "start_datastore": start_datastore,
        "stop_datastore": stop_datastore,
        "create_snapshot": create_snapshot,
        "execute_sql": functools.partial(postgresql.execute_sql, connect=connect),
        "data_check": functools.partial(postgresql.data_check, connect=connect),
        "load_dataset": load_dataset,
        "consume_subscription": consume_subscription,
        "copy_to_s3": copy_to_s3,
        "cluster_maintenance": functools.partial(maintenance.cluster_maintenance, connect=connect),
    },
)
