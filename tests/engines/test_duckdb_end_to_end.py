"""The duckdb_engine run by a real `dart up` (SQLite) as a local engine process, registered by its own
``register`` command, against moto's S3 with its mart in DART_HOME: every action type with the data checked, a
load SIGKILLed mid-file then re-run (one copy of each row), and bad input failing with a one-line cause."""

from __future__ import annotations

import gzip
import io
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from bench.harness.api_client import Api
from bench.harness.stacks import RunningDart
from tests.engines.conftest import dataset_for
from tests.engines.test_end_to_end import COLUMNS, _finished, _run, _states, _store, _write_csv

pytestmark = pytest.mark.slow
# run by conftest's dart fixture, registered by its api fixture
ENGINES = {"duckdb_engine": "engines.duckdb"}


def _mart(api: Api, store: dict[str, Any]) -> Path:
    url = api.get(f"/datastore/{store['id']}")["data"]["connection_url"]
    assert url.startswith("duckdb://")
    return Path(url[len("duckdb://") :])


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_every_action_type(api: Api, dart: RunningDart, s3: Any, bucket: str) -> None:
    for part in range(3):
        _write_csv(s3, bucket, f"sales/2026/part-{part}.csv.gz", part * 1000, 1000)
    dataset = api.post(
        "/dataset", {"data": dataset_for(f"s3://{bucket}/sales", "CSV", "GZIP", COLUMNS, table_name="sales")}
    )
    store = _store(api, "duckdb_engine", {})
    actions = _run(
        api,
        store,
        ("execute_sql", {"sql_script": "CREATE SCHEMA mart"}),
        (
            "load_dataset",
            {
                "dataset_id": dataset["id"],
                "target_schema_name": "mart",
                "s3_path_end_prefix_exclusive": f"s3://{bucket}/sales/2026/part-2",
            },
        ),
        ("data_check", {"sql_script": "SELECT count(*) = 2000 FROM mart.sales"}),
        (
            "execute_sql",
            {"sql_script": "CREATE TABLE totals AS SELECT count(*) AS n, sum(amount) AS s FROM mart.sales"},
        ),
        (
            "copy_to_s3",
            {
                "source_sql_statement": "SELECT * FROM totals",
                "destination_s3_path": f"s3://{bucket}/agg/t_",
                "delimiter": ",",
            },
        ),
        (
            "copy_to_s3",
            {
                "source_sql_statement": "SELECT * FROM mart.sales",
                "file_format": "PARQUET",
                "destination_s3_path": f"s3://{bucket}/agg/sales_",
            },
        ),
        ("data_check", {"sql_script": "SELECT count(*) > 2000 FROM mart.sales"}),
    )
    assert _states(actions) == ["COMPLETED"] * 6 + ["FAILED"], [
        a["data"].get("error_message") for a in actions
    ]
    assert actions[1]["data"]["extra_data"]["rows"] == 2000
    assert actions[6]["data"]["error_message"] == "data_check: Data check failed"
    mart = _mart(api, store)
    assert (
        mart == dart.home / "engines" / "duckdb" / f"{store['id']}.duckdb"
    )  # the default: DART_HOME's data folder
    expected_sum = sum(i % 1000 + 0.25 for i in range(2000))
    assert _query(mart, "SELECT count(*), sum(amount)::DOUBLE FROM mart.sales") == [(2000, expected_sum)]
    body = gzip.decompress(s3.get_object(Bucket=bucket, Key="agg/t_000.gz")["Body"].read()).decode()
    assert body == f"2000,{expected_sum:.2f}\n"
    parquet = pq.read_table(
        io.BytesIO(s3.get_object(Bucket=bucket, Key="agg/sales_000.parquet")["Body"].read())
    )
    assert parquet.num_rows == 2000 and parquet.column_names == ["id", "name", "amount"]


def test_consume_subscription_loads_exactly_the_assigned_elements(api: Api, s3: Any, bucket: str) -> None:
    for part in range(3):
        _write_csv(s3, bucket, f"feed/part-{part}.csv.gz", part * 100, 100)
    dataset = api.post(
        "/dataset", {"data": dataset_for(f"s3://{bucket}/feed", "CSV", "GZIP", COLUMNS, table_name="feed")}
    )
    subscription = api.post(
        f"/dataset/{dataset['id']}/subscription", {"data": {"name": f"sub_{time.monotonic_ns()}"}}
    )
    deadline = time.monotonic() + 60
    while api.get(f"/subscription/{subscription['id']}")["data"]["state"] != "ACTIVE":
        assert time.monotonic() < deadline, "the subscription never became ACTIVE"
        time.sleep(0.2)
    store = _store(api, "duckdb_engine", {})
    first, second = _run(
        api,
        store,
        ("consume_subscription", {"subscription_id": subscription["id"]}),
        ("consume_subscription", {"subscription_id": subscription["id"]}),
    )
    assert _states([first, second]) == ["COMPLETED"] * 2, first["data"].get("error_message")
    assert (first["data"]["extra_data"]["files"], second["data"]["extra_data"]["files"]) == (3, 0)
    elements = api.ok("GET", f"/subscription/{subscription['id']}/elements", params={"limit": 100})
    assert sorted(e["state"] for e in elements) == ["CONSUMED"] * 3
    assert _query(_mart(api, store), "SELECT count(*), count(DISTINCT id), sum(id) FROM feed") == [
        (300, 300, sum(range(300)))
    ]


def test_a_killed_load_then_rerun_leaves_one_copy_of_every_row(
    api: Api, dart: RunningDart, s3: Any, bucket: str
) -> None:
    _write_csv(s3, bucket, "big/part-0.csv.gz", 0, 1000)
    # Big enough that the load is still inserting when it is killed, however fast the load has become.
    _write_csv(s3, bucket, "big/part-1.csv.gz", 1000, 4_000_000)
    dataset = api.post(
        "/dataset", {"data": dataset_for(f"s3://{bucket}/big", "CSV", "GZIP", COLUMNS, table_name="big")}
    )
    store = _store(api, "duckdb_engine", {"path": "killed.duckdb"})
    [action] = api.post(
        f"/datastore/{store['id']}/action",
        [
            {
                "data": {
                    "name": "load",
                    "action_type_name": "load_dataset",
                    "engine_name": "duckdb_engine",
                    "args": {"dataset_id": dataset["id"]},
                    "on_failure": "CONTINUE",
                }
            }
        ],
    )
    deadline = time.monotonic() + 60
    while not api.get(f"/action/{action['id']}")["data"].get(
        "progress"
    ):  # the first file is in: on the big one
        assert time.monotonic() < deadline, "the load never finished its first file"
        time.sleep(0.02)
    assert dart.kill_engine(action["id"]) == 1
    killed = _finished(api, action["id"])
    assert killed["data"]["state"] == "FAILED" and "without checking in" in killed["data"]["error_message"]
    mart = dart.home / "engines" / "duckdb" / "killed.duckdb"
    assert _query(mart, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'big'") == [
        (0,)
    ]  # nothing half-loaded
    [rerun] = _run(api, store, ("load_dataset", {"dataset_id": dataset["id"]}))
    assert rerun["data"]["state"] == "COMPLETED", rerun["data"].get("error_message")
    assert _query(mart, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM big") == [
        (4_001_000, 4_001_000, 0, 4_000_999)
    ]


def test_bad_input_fails_with_a_one_line_cause(api: Api, s3: Any, bucket: str) -> None:
    _write_csv(s3, bucket, "odd/part-0.csv.gz", 0, 10)
    wrong = api.post(
        "/dataset", {"data": dataset_for(f"s3://{bucket}/odd", "CSV", "GZIP", COLUMNS[:2], table_name="odd")}
    )
    nowhere = api.post(
        "/dataset", {"data": dataset_for("s3://no-such-bucket-dd-e2e/x", "CSV", "GZIP", COLUMNS)}
    )
    store = _store(api, "duckdb_engine", {})
    bad_columns, missing_bucket, sql_error = _run(
        api,
        store,
        ("load_dataset", {"dataset_id": wrong["id"]}),
        ("load_dataset", {"dataset_id": nowhere["id"]}),
        ("execute_sql", {"sql_script": "SELEC 1"}),
    )
    assert _states([bad_columns, missing_bucket, sql_error]) == ["FAILED"] * 3
    assert bad_columns["data"]["error_message"] == (
        f"load_dataset: row 2 of s3://{bucket}/odd/part-0.csv.gz: 3 field(s) where the dataset has 2 "
        "column(s) "
        "(id, name)"
    )
    assert missing_bucket["data"]["error_message"].startswith(
        "load_dataset: cannot list s3://no-such-bucket-dd-e2e/x/: NoSuchBucket"
    )
    assert (
        sql_error["data"]["error_message"]
        == 'execute_sql: SQL error: Parser Error: syntax error at or near "SELEC"'
    )
    assert _query(_mart(api, store), "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'odd'") == [
        (0,)
    ]
