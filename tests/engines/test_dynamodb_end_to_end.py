"""The dynamodb_engine run by a real `dart up` (SQLite) as a local engine process, registered by its own
``register`` command, against moto's DynamoDB and S3: every action type with the items checked, a load
SIGKILLed mid-file then re-run (the same table, the capacity put back), and bad input failing in one line."""

from __future__ import annotations

import time
import uuid
from typing import Any

import boto3
import pytest

from bench.harness.api_client import Api
from bench.harness.stacks import RunningDart
from engines.dynamodb.table import RESTORE_TAG
from tests.engines.conftest import dataset_for
from tests.engines.test_dynamodb_engine import (
    COLUMNS,
    _count,
    _expected,
    _get,
    _put,
    _row,
    _tags,
    _write_capacity,
)
from tests.engines.test_end_to_end import _finished, _run, _states

pytestmark = pytest.mark.slow
# run by conftest's dart fixture, registered by its api fixture
ENGINES = {"dynamodb_engine": "engines.dynamodb"}


@pytest.fixture
def dynamodb(aws_env: dict[str, str]) -> Any:
    return boto3.client("dynamodb", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1")


def _setup(api: Api, location: str, **options: Any) -> tuple[dict[str, Any], str]:
    """A dataset at ``location`` keyed on id, and a dynamodb_engine datastore with a table of its own."""
    dataset = api.post("/dataset", {"data": dataset_for(location, "CSV", "GZIP", COLUMNS, table_name="events",
                                                        distribution_keys=["id"])})
    table = f"e2e_{uuid.uuid4().hex[:10]}"
    store = api.post("/datastore", {"data": {
        "name": f"ddb_{time.monotonic_ns()}", "engine_name": "dynamodb_engine", "state": "ACTIVE",
        "args": {"dataset_id": dataset["id"], "target_table_name": table, **options}}})
    return store, table


def test_every_action_type(api: Api, dynamodb: Any, s3: Any, bucket: str) -> None:
    for part in range(3):
        _put(s3, bucket, f"sales/part-{part}.csv.gz", [_row(i) for i in range(part * 1000, part * 1000 + 1000)])
    store, table = _setup(api, f"s3://{bucket}/sales")
    created, loaded = _run(
        api, store, ("create_table", {"read_capacity_units": 2, "write_capacity_units": 5}),
        ("load_dataset", {"s3_path_end_prefix_exclusive": f"s3://{bucket}/sales/part-2",
                          "initial_write_capacity_units": 40000, "write_capacity_utilization_percent": 1.5}))
    assert _states([created, loaded]) == ["COMPLETED"] * 2, [a["data"].get("error_message") for a in (created, loaded)]
    assert created["data"]["extra_data"] == {"table": table, "key": {"id": "N"}, "created": True}
    assert loaded["data"]["extra_data"]["rows"] == 2000
    assert loaded["data"]["extra_data"]["write_capacity"] == {"before": 5, "during": 40000, "after": 5}
    assert _count(dynamodb, table) == 2000 and _write_capacity(dynamodb, table) == 5
    for i in (0, 999, 1000, 1999):
        assert _get(dynamodb, table, i) == _expected(i)
    [deleted] = _run(api, store, ("delete_table", {}))
    assert deleted["data"]["state"] == "COMPLETED", deleted["data"].get("error_message")
    assert table not in dynamodb.list_tables()["TableNames"]


def test_a_killed_load_then_rerun_leaves_the_same_table_and_capacity(
        api: Api, dart: RunningDart, dynamodb: Any, s3: Any, bucket: str) -> None:
    _put(s3, bucket, "big/part-0.csv.gz", [_row(i) for i in range(1000)])
    # Big enough that the load is still writing when it is killed: moto takes several seconds for it.
    _put(s3, bucket, "big/part-1.csv.gz", [_row(i) for i in range(1000, 21_000)])
    store, table = _setup(api, f"s3://{bucket}/big")
    [created] = _run(api, store, ("create_table", {"read_capacity_units": 1, "write_capacity_units": 5}))
    assert created["data"]["state"] == "COMPLETED", created["data"].get("error_message")
    load = {"initial_write_capacity_units": 40000, "write_capacity_utilization_percent": 1.5}
    [action] = api.post(f"/datastore/{store['id']}/action", [{"data": {
        "name": "load", "action_type_name": "load_dataset", "engine_name": "dynamodb_engine", "args": load,
        "on_failure": "CONTINUE"}}])
    deadline = time.monotonic() + 60
    while not api.get(f"/action/{action['id']}")["data"].get("progress"):  # the first file is in: on the big one
        assert time.monotonic() < deadline, "the load never finished its first file"
        time.sleep(0.02)
    assert dart.kill_engine(action["id"]) == 1
    killed = _finished(api, action["id"])
    assert killed["data"]["state"] == "FAILED" and "without checking in" in killed["data"]["error_message"]
    # The kill left the capacity raised, and the promise to restore it on the table.
    assert _write_capacity(dynamodb, table) == 40000 and _tags(dynamodb, table)[RESTORE_TAG] == "5"
    assert 0 < _count(dynamodb, table) < 21_000  # some items in, not all
    [rerun] = _run(api, store, ("load_dataset", load))
    assert rerun["data"]["state"] == "COMPLETED", rerun["data"].get("error_message")
    assert rerun["data"]["extra_data"]["write_capacity"] == {"before": 40000, "during": 40000, "after": 5}
    assert _count(dynamodb, table) == 21_000
    assert _write_capacity(dynamodb, table) == 5 and RESTORE_TAG not in _tags(dynamodb, table)
    for i in (0, 999, 1000, 12_345, 20_999):
        assert _get(dynamodb, table, i) == _expected(i)
    dynamodb.delete_table(TableName=table)  # the moto server is the session's


def test_bad_input_fails_with_a_one_line_cause(api: Api, dynamodb: Any, s3: Any, bucket: str) -> None:
    rows = [_row(i) for i in range(10)]
    rows[4][0] = "abc"
    _put(s3, bucket, "odd/part-0.csv.gz", rows)
    store, table = _setup(api, f"s3://{bucket}/odd")
    missing_table, created, bad_row = _run(
        api, store, ("load_dataset", {}), ("create_table", {"read_capacity_units": 1, "write_capacity_units": 1}),
        ("load_dataset", {}))
    assert _states([missing_table, created, bad_row]) == ["FAILED", "COMPLETED", "FAILED"]
    assert missing_table["data"]["error_message"] == (
        f'load_dataset: DynamoDB table "{table}" does not exist (create_table creates it)')
    assert bad_row["data"]["error_message"] == (
        f'load_dataset: row 6 of s3://{bucket}/odd/part-0.csv.gz: column "id" (BIGINT): invalid value "abc"')
    nowhere, _ = _setup(api, "s3://no-such-bucket-ddb-e2e/x")
    [unlisted] = _run(api, nowhere, ("load_dataset", {}))
    assert unlisted["data"]["error_message"].startswith(
        "load_dataset: cannot list s3://no-such-bucket-ddb-e2e/x/: NoSuchBucket")
    dynamodb.delete_table(TableName=table)
