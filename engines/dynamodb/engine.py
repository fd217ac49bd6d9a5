"""The dynamodb_engine's actions, each a short function over the DynamoDB hook (engines.dynamodb.table) and the
dataset layer: create_table (the key inferred from the dataset), delete_table and load_dataset
(engines.dynamodb.load). The table is the datastore's ``target_table_name``, else the dataset's table_name."""

from __future__ import annotations

import logging

from engines.data import loads
from engines.data import s3 as s3_hook
from engines.data.datasets import Column, Dataset
from engines.dynamodb import table as hook
from engines.dynamodb.attributes import key_type
from engines.dynamodb.definition import NAME
from engines.dynamodb.load import Loader
from engines.dynamodb.writer import WRITERS
from engines.runner import dispatch
from engines.sdk import ActionContext, ActionFailure, DartClient

log = logging.getLogger("dart.engine.dynamodb")


def _dataset(context: ActionContext, client: DartClient) -> Dataset:
    dataset_id = context.datastore_args.get("dataset_id")
    if not dataset_id:
        raise ActionFailure("the datastore has no dataset_id")
    return Dataset.from_api(client.get(f"/dataset/{dataset_id}"))


def table_name(context: ActionContext, dataset: Dataset) -> str:
    return str(context.datastore_args.get("target_table_name") or dataset.table_name)


def _column(dataset: Dataset, name: str, role: str) -> Column:
    found = [c for c in dataset.load_columns if c.name == name]
    if not found:
        raise ActionFailure(f'the {role} "{name}" is not a column of dataset {dataset.name} '
                            f"({', '.join(c.name for c in dataset.load_columns)})")
    return found[0]


def key_columns(context: ActionContext, dataset: Dataset) -> list[Column]:
    """The hash key (target_distribution_key, else the dataset's first distribution key, else its first primary
    key) and the sort key, if any (target_sort_key, else the dataset's first sort key)."""
    args = context.datastore_args
    distribution = dataset.extra.get("distribution_keys") or []
    sort = dataset.extra.get("sort_keys") or []
    hash_name = args.get("target_distribution_key") or (distribution[0] if distribution else None) \
        or (dataset.primary_keys[0] if dataset.primary_keys else None)
    if not hash_name:
        raise ActionFailure("a DynamoDB table needs a hash key: set the datastore's target_distribution_key or "
                            f"the distribution_keys of dataset {dataset.name}")
    sort_name = args.get("target_sort_key") or (str(sort[0]).split()[0] if sort else None)
    columns = [_column(dataset, str(hash_name), "hash key")]
    if sort_name and sort_name != hash_name:
        columns.append(_column(dataset, str(sort_name), "sort key"))
    return columns


def create_table(context: ActionContext, client: DartClient) -> None:
    dataset = _dataset(context, client)
    name = table_name(context, dataset)
    try:
        keys = {c.name: key_type(c) for c in key_columns(context, dataset)}
    except ValueError as exc:
        raise ActionFailure(str(exc)) from exc
    client.report_progress(context.action_id, 0.1)
    args = context.action_args
    created = hook.Table(hook.client(), name).create(keys, int(args.get("read_capacity_units") or 25),
                                                     int(args.get("write_capacity_units") or 25))
    client.report_progress(context.action_id, 1.0, {"table": name, "key": keys, "created": created})


def delete_table(context: ActionContext, client: DartClient) -> None:
    dataset = _dataset(context, client)
    name = table_name(context, dataset)
    client.report_progress(context.action_id, 0.1)
    deleted = hook.Table(hook.client(), name).delete()
    if not deleted:
        log.info("table %s did not exist", name)
    client.report_progress(context.action_id, 1.0, {"table": name, "deleted": deleted})


def load_dataset(context: ActionContext, client: DartClient) -> None:
    dataset = _dataset(context, client)
    s3 = s3_hook.client()
    files = list(s3_hook.list_range(s3, s3_hook.resolve_range(dataset.location, context.action_args)))
    loader = Loader(hook.client(WRITERS + 2, validate=False), s3, table_name(context, dataset), dataset, context.action_args,
                    loads.progress_reporter(client, context.action_id))
    result = loader.run(files)
    client.report_progress(context.action_id, 1.0, result)


HANDLER = dispatch(NAME, {"create_table": create_table, "delete_table": delete_table,
                          "load_dataset": load_dataset})
