"""The data engines run by a real `dart up` (SQLite) as local engine processes: registered over the API by their
own ``register`` command, launched with only the engine environment, against moto's S3 and the real
PostgreSQL. Covers every action type of both engines, a load whose engine is SIGKILLed mid-COPY then re-run
(exactly one copy of each row), and bad input failing with a one-line cause."""

from __future__ import annotations

import gzip
import time
from typing import Any

import pytest

from bench.harness.api_client import Api, ApiError
from bench.harness.stacks import RunningDart
from tests.engines.conftest import dataset_for
from tests.engines.pgsupport import datastore as pg_datastore
from tests.engines.pgsupport import query

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
# run by conftest's dart fixture, registered by its api fixture
ENGINES = {"s3_engine": "engines.s3", "postgresql_engine": "engines.postgresql"}
COLUMNS: list[dict[str, Any]] = [{"name": "id", "data_type": "BIGINT"}, {"name": "name", "data_type": "VARCHAR", "length": 20},
           {"name": "amount", "data_type": "NUMERIC", "precision": 12, "scale": 2}]


def _store(api: Api, engine: str, args: dict[str, Any]) -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": f"ds_{time.monotonic_ns()}", "engine_name": engine,
                                            "state": "ACTIVE", "args": args}})


def _run(api: Api, store: dict[str, Any], *actions: tuple[str, dict[str, Any]],
         timeout: float = 90) -> list[dict[str, Any]]:
    """Ad-hoc actions on the datastore (run one after another), once every one has finished; a failure does not
    deactivate the datastore (on_failure CONTINUE), so the next action still runs."""
    created = api.post(f"/datastore/{store['id']}/action", [
        {"data": {"name": f"a{i}_{kind}", "action_type_name": kind, "engine_name": store["data"]["engine_name"],
                  "args": args, "on_failure": "CONTINUE"}} for i, (kind, args) in enumerate(actions)])
    return [_finished(api, a["id"], timeout) for a in created]


def _finished(api: Api, action_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        action = api.get(f"/action/{action_id}")
        if action["data"]["state"] in ("COMPLETED", "FAILED"):
            return action
        time.sleep(0.2)
    raise AssertionError(f"action {action_id} did not finish in {timeout} s")


def _states(actions: list[dict[str, Any]]) -> list[str]:
    return [a["data"]["state"] for a in actions]


def test_s3_engine_copy_and_data_check(api: Api, s3: Any, bucket: str) -> None:
    for i in range(30):
        s3.put_object(Bucket=bucket, Key=f"in/{i:03d}.txt", Body=b"line\n" * (i + 1))
    store = _store(api, "s3_engine", {})
    copied, passed, failed = _run(
        api, store, ("copy", {"from_path": f"s3://{bucket}/in/", "to_path": f"s3://{bucket}/out/{{YEAR}}/"}),
        ("data_check", {"s3_path_prefix": f"s3://{bucket}/out/", "min_file_size_in_bytes": 150}),
        ("data_check", {"s3_path_prefix": f"s3://{bucket}/out/", "s3_path_regex": ".*\\.csv$"}))
    assert _states([copied, passed]) == ["COMPLETED", "COMPLETED"], copied["data"].get("error_message")
    out = s3.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]
    assert len(out) == 30 and sum(o["Size"] for o in out) == 5 * sum(range(1, 31))
    assert copied["data"]["extra_data"] == {"objects_copied": 30, "bytes_copied": 5 * sum(range(1, 31))}
    assert failed["data"]["state"] == "FAILED"
    assert failed["data"]["error_message"] == (f"data_check: Data check failed: no object under s3://{bucket}/out/"
                                               " matches (regex '.*\\\\.csv$', at least 0 bytes)")
    with pytest.raises(ApiError, match="'to_path' is a required property"):  # the original's schema let it by
        _run(api, store, ("copy", {"from_path": f"s3://{bucket}/in/"}))


def _write_csv(s3: Any, bucket: str, key: str, first: int, count: int) -> None:
    lines = "".join(f"{i},name {i},{i % 1000}.25\n" for i in range(first, first + count))
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(("id,name,amount\n" + lines).encode(), 1))


def test_postgresql_engine_every_action(api: Api, pg_url: str, s3: Any, bucket: str) -> None:
    for part in range(3):
        _write_csv(s3, bucket, f"sales/2026/part-{part}.csv.gz", part * 1000, 1000)
    dataset = api.post("/dataset", {"data": dataset_for(f"s3://{bucket}/sales", "CSV", "GZIP", COLUMNS,
                                                        table_name="sales")})
    store = _store(api, "postgresql_engine", pg_datastore(pg_url, schema="mart")["data"]["args"])
    actions = _run(
        api, store, ("execute_sql", {"sql_script": "CREATE SCHEMA mart"}),
        ("load_dataset", {"dataset_id": dataset["id"], "s3_path_end_prefix_exclusive": f"s3://{bucket}/sales/2026/part-2"}),
        ("data_check", {"sql_script": "SELECT count(*) = 2000 FROM sales"}),
        ("execute_sql", {"sql_script": "CREATE TABLE totals AS SELECT count(*) AS n, sum(amount) AS s FROM sales"}),
        ("copy_to_s3", {"source_sql_statement": "SELECT * FROM totals", "destination_s3_path": f"s3://{bucket}/agg/t_",
                        "delimiter": ","}),
        ("data_check", {"sql_script": "SELECT count(*) > 2000 FROM sales"}))
    assert _states(actions) == ["COMPLETED"] * 5 + ["FAILED"], [a["data"].get("error_message") for a in actions]
    assert actions[1]["data"]["extra_data"]["rows"] == 2000
    assert actions[5]["data"]["error_message"] == "data_check: Data check failed"
    expected_sum = sum(i % 1000 + 0.25 for i in range(2000))
    assert query(pg_url, "SELECT count(*), sum(amount)::float FROM mart.sales") == [(2000, expected_sum)]
    body = gzip.decompress(s3.get_object(Bucket=bucket, Key="agg/t_000.gz")["Body"].read()).decode()
    assert body == f"2000,{expected_sum:.2f}\n"


def test_a_killed_load_then_rerun_leaves_one_copy_of_every_row(api: Api, dart: RunningDart, pg_url: str, s3: Any,
                                                               bucket: str) -> None:
    _write_csv(s3, bucket, "big/part-0.csv.gz", 0, 1000)
    # Big enough that the load is still copying when it is killed, however fast COPY has become.
    _write_csv(s3, bucket, "big/part-1.csv.gz", 1000, 2_000_000)
    dataset = api.post("/dataset", {"data": dataset_for(f"s3://{bucket}/big", "CSV", "GZIP", COLUMNS,
                                                        table_name="big")})
    store = _store(api, "postgresql_engine", pg_datastore(pg_url)["data"]["args"])
    [action] = api.post(f"/datastore/{store['id']}/action", [{"data": {
        "name": "load", "action_type_name": "load_dataset", "engine_name": "postgresql_engine",
        "args": {"dataset_id": dataset["id"]}, "on_failure": "CONTINUE"}}])
    deadline = time.monotonic() + 60
    # Each file is its own COPY and the first has 1,000 rows: past 1,000 tuples, the COPY is in the big file.
    while not query(pg_url, "SELECT 1 FROM pg_stat_progress_copy WHERE datname = current_database()"
                            " AND tuples_processed > 1000"):
        assert time.monotonic() < deadline, "the load never reached the big file"
        time.sleep(0.02)
    assert dart.kill_engine(action["id"]) == 1
    killed = _finished(api, action["id"])
    assert killed["data"]["state"] == "FAILED" and "without checking in" in killed["data"]["error_message"]
    assert query(pg_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'big'") == [(0,)]  # nothing half-loaded
    [rerun] = _run(api, store, ("load_dataset", {"dataset_id": dataset["id"]}))
    assert rerun["data"]["state"] == "COMPLETED", rerun["data"].get("error_message")
    assert query(pg_url, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM big") == [
        (2_001_000, 2_001_000, 0, 2_000_999)]


def test_bad_input_fails_with_a_one_line_cause(api: Api, pg_url: str, s3: Any, bucket: str) -> None:
    _write_csv(s3, bucket, "odd/part-0.csv.gz", 0, 10)
    wrong = api.post("/dataset", {"data": dataset_for(f"s3://{bucket}/odd", "CSV", "GZIP", COLUMNS[:2],
                                                      table_name="odd")})
    nowhere = api.post("/dataset", {"data": dataset_for("s3://no-such-bucket-e2e/x", "CSV", "GZIP", COLUMNS)})
    store = _store(api, "postgresql_engine", pg_datastore(pg_url)["data"]["args"])
    bad_columns, missing_bucket, sql_error = _run(
        api, store, ("load_dataset", {"dataset_id": wrong["id"]}), ("load_dataset", {"dataset_id": nowhere["id"]}),
        ("execute_sql", {"sql_script": "SELEC 1"}))
    assert _states([bad_columns, missing_bucket, sql_error]) == ["FAILED"] * 3
    assert bad_columns["data"]["error_message"] == (
        f"load_dataset: row 2 of s3://{bucket}/odd/part-0.csv.gz: 3 field(s) where the dataset has 2 column(s) "
        "(id, name)")
    assert missing_bucket["data"]["error_message"].startswith(
        "load_dataset: cannot list s3://no-such-bucket-e2e/x/: NoSuchBucket")
    assert sql_error["data"]["error_message"] == 'execute_sql: SQL error: syntax error at or near "SELEC"'
    assert query(pg_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'odd'") == [(0,)]


def test_consume_subscription_loads_exactly_the_assigned_elements(api: Api, pg_url: str, s3: Any,
                                                                  bucket: str) -> None:
    for part in range(3):
        _write_csv(s3, bucket, f"feed/part-{part}.csv.gz", part * 100, 100)
    dataset = api.post("/dataset", {"data": dataset_for(f"s3://{bucket}/feed", "CSV", "GZIP", COLUMNS,
                                                        table_name="feed")})
    subscription = api.post(f"/dataset/{dataset['id']}/subscription", {"data": {"name": f"sub_{time.monotonic_ns()}"}})
    deadline = time.monotonic() + 60
    while api.get(f"/subscription/{subscription['id']}")["data"]["state"] != "ACTIVE":
        assert time.monotonic() < deadline, "the subscription never became ACTIVE"
        time.sleep(0.2)
    store = _store(api, "postgresql_engine", pg_datastore(pg_url)["data"]["args"])
    args = {"subscription_id": subscription["id"]}
    [first] = _run(api, store, ("consume_subscription", args))
    assert first["data"]["state"] == "COMPLETED", first["data"].get("error_message")
    [second] = _run(api, store, ("consume_subscription", args))  # nothing new is assigned: nothing loaded
    assert second["data"]["state"] == "COMPLETED", second["data"].get("error_message")
    elements = api.ok("GET", f"/subscription/{subscription['id']}/elements", params={"limit": 100})
    assert sorted(e["state"] for e in elements) == ["CONSUMED"] * 3
    assert (first["data"]["extra_data"]["files"], second["data"]["extra_data"]["files"]) == (3, 0)
    assert query(pg_url, "SELECT count(*), count(DISTINCT id), sum(id) FROM feed") == [(300, 300, sum(range(300)))]


def test_a_sql_datastore_without_its_password_is_refused_at_save_time(api: Api, pg_url: str) -> None:
    args = pg_datastore(pg_url)["data"]["args"]
    del args["password"]
    status, body = api.request("POST", "/datastore", {"data": {"name": f"ds_{time.monotonic_ns()}",
                                                               "engine_name": "postgresql_engine", "state": "ACTIVE",
                                                               "args": args}})
    assert status == 400 and "password" in str(body)
    status, body = api.request("POST", "/datastore", {"data": {"name": f"ds_{time.monotonic_ns()}",
                                                               "engine_name": "redshift_engine", "state": "ACTIVE",
                                                               "args": {"master_user_name": "admin"}}})
    assert status == 400 and "master_user_password" in str(body)
