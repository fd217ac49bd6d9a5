"""The postgresql_engine's actions against the machine's PostgreSQL (a fresh database per test) and moto's S3:
every format x compression and load type with the data checked, MERGE and RELOAD_ALL exactly, bad input failing
with a clear one-line cause and nothing half-loaded, and copy_to_s3 streamed to a multipart upload."""

from __future__ import annotations

import glob
import gzip
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engines.data.datasets import Dataset
from engines.postgresql.engine import HANDLER
from engines.postgresql.hook import connect, connection_args
from engines.postgresql.load import Loader, LoadOptions
from engines.sdk import ActionFailure
from tests.engines.conftest import compress, dataset_for, encode_rows
from tests.engines.pgsupport import Dart, context, datastore, query

pytestmark = pytest.mark.postgres

COLUMNS: list[dict[str, Any]] = [{"name": "id", "data_type": "BIGINT", "is_nullable": False},
           {"name": "name", "data_type": "VARCHAR", "length": 10},
           {"name": "amount", "data_type": "NUMERIC", "precision": 10, "scale": 2},
           {"name": "day", "data_type": "DATE", "date_pattern": "dd/MM/yyyy"}]
NAMES = ["id", "name", "amount", "day"]
FILE_1 = [[2, "b2", "20.00", "02/01/2026"], [3, "c2", "30.00", "03/01/2026"], [4, "d-low", "1.00", "04/01/2026"]]
FILE_2 = [[4, "d-high", "99.00", "04/01/2026"], [5, "e", "50.00", "05/01/2026"]]
BEFORE = "INSERT INTO public.events VALUES (1, 'a', 10, '2026-01-01'), (2, 'b', 1, '2026-01-02'), " \
         "(3, 'c', 1, '2026-01-03')"


def _put_files(s3: Any, bucket: str, fmt: str, compression: str) -> list[tuple[str, int]]:
    files = []
    for i, rows in enumerate([FILE_1, FILE_2]):
        body = compress(encode_rows(rows, NAMES, fmt), compression)
        s3.put_object(Bucket=bucket, Key=f"events/part-{i}", Body=body)
        files.append((f"s3://{bucket}/events/part-{i}", len(body)))
    return files


def _load(pg_url: str, s3: Any, dataset: dict[str, Any], files: list[tuple[str, int]], action_id: str = "a1",
          **options: Any) -> Any:
    with connect(connection_args(datastore(pg_url))) as conn:
        return Loader(conn, s3, action_id, Dataset.from_api(dataset), LoadOptions(**options)).run(files)


def _table(pg_url: str) -> list[tuple[Any, ...]]:
    return [(r[0], r[1], float(r[2]), r[3].day) for r in query(pg_url, "SELECT * FROM events ORDER BY id, name")]


def _prepare(pg_url: str, s3: Any, bucket: str, fmt: str, compression: str, **fields: Any) -> Any:
    dataset = dataset_for(f"s3://{bucket}/events", fmt, compression, COLUMNS, **fields)
    _load(pg_url, s3, dataset, [], action_id="create")  # creates the table
    query(pg_url, BEFORE + " RETURNING id")
    return dataset, _put_files(s3, bucket, fmt, compression)


@pytest.mark.parametrize(("fmt", "compression"), [
    ("CSV", "NONE"), ("CSV", "GZIP"), ("CSV", "BZ2"), ("JSON", "NONE"), ("JSON", "GZIP"), ("JSON", "BZ2"),
    ("PARQUET", "NONE")])
def test_insert_every_format_and_compression(pg_url: str, s3: Any, bucket: str, fmt: str, compression: str) -> None:
    dataset, files = _prepare(pg_url, s3, bucket, fmt, compression)
    result = _load(pg_url, s3, dataset, files)
    assert (result.files, result.rows) == (2, 5)
    assert query(pg_url, "SELECT count(*), sum(amount), count(DISTINCT id) FROM events")[0] == (8, 212, 5)
    assert _table(pg_url)[2] == (2, "b2", 20.0, 2)


EXPECTED = {
    "MERGE": [(1, "a", 10.0, 1), (2, "b2", 20.0, 2), (3, "c2", 30.0, 3), (4, "d-high", 99.0, 4), (5, "e", 50.0, 5)],
    "RELOAD_ALL": [(2, "b2", 20.0, 2), (3, "c2", 30.0, 3), (4, "d-high", 99.0, 4), (4, "d-low", 1.0, 4),
                   (5, "e", 50.0, 5)],
    "RELOAD_LAST": [(4, "d-high", 99.0, 4), (5, "e", 50.0, 5)],
}


@pytest.mark.parametrize("load_type", ["MERGE", "RELOAD_ALL", "RELOAD_LAST"])
def test_load_types_exactly(pg_url: str, s3: Any, bucket: str, load_type: str) -> None:
    dataset, files = _prepare(pg_url, s3, bucket, "CSV", "GZIP", load_type=load_type, merge_keys=["id"])
    _load(pg_url, s3, dataset, files)
    assert _table(pg_url) == EXPECTED[load_type]


def test_merge_duplicates_resolved_by_batch_merge_sort_keys_and_batches(pg_url: str, s3: Any, bucket: str) -> None:
    dataset, files = _prepare(pg_url, s3, bucket, "JSON", "NONE", load_type="MERGE", primary_keys=["id"],
                              batch_merge_sort_keys=["amount ASC"])
    _load(pg_url, s3, dataset, files, batch_size=0)
    assert _table(pg_url)[3] == (4, "d-low", 1.0, 4)  # the lowest amount ranks first
    _load(pg_url, s3, {**dataset, "batch_merge_sort_keys": []}, files, action_id="a2", batch_size=1)
    assert _table(pg_url) == EXPECTED["MERGE"]  # file by file, the later file wins


def test_reload_all_keeps_the_old_table_until_the_swap_and_a_rerun_is_a_no_op(pg_url: str, s3: Any,
                                                                             bucket: str) -> None:
    dataset, files = _prepare(pg_url, s3, bucket, "CSV", "NONE", load_type="RELOAD_ALL", primary_keys=["id", "name"])
    s3.put_object(Bucket=bucket, Key="events/part-2", Body=b"id,name,amount,day\n9,z,x,01/01/2026\n")
    with pytest.raises(ValueError, match=r'^row 2 of s3://.*/events/part-2: column "amount" \(NUMERIC\(10,2\)\): '
                                         r'invalid value "x"$'):
        _load(pg_url, s3, dataset, files + [(f"s3://{bucket}/events/part-2", 0)])
    assert len(_table(pg_url)) == 3  # the old rows, untouched
    for _ in range(2):  # the same action again: loaded once
        _load(pg_url, s3, dataset, files)
    assert _table(pg_url) == EXPECTED["RELOAD_ALL"]
    assert query(pg_url, "SELECT conname FROM pg_constraint WHERE conrelid = 'events'::regclass") == [("events_pkey",)]
    assert query(pg_url, "SELECT files, rows FROM dart_tracking.loads WHERE action_id = 'a1'") == [(2, 5)]


def test_bad_rows_are_named_and_max_errors_skips_them(pg_url: str, s3: Any, bucket: str) -> None:
    dataset = dataset_for(f"s3://{bucket}/bad", "CSV", "GZIP", COLUMNS)
    lines = ["id,name,amount,day"] + [f"{i},n{i},{i}.5,01/02/2026" for i in range(1, 1500)]
    lines[1234] = "abc,n,1,01/02/2026"
    lines[1300] = "1300,n,1,2026-02-01"
    s3.put_object(Bucket=bucket, Key="bad/part-3.csv.gz", Body=gzip.compress("\n".join(lines).encode()))
    files = [(f"s3://{bucket}/bad/part-3.csv.gz", 0)]
    with pytest.raises(ValueError) as caught:
        _load(pg_url, s3, dataset, files)
    assert str(caught.value) == (f'row 1,235 of s3://{bucket}/bad/part-3.csv.gz: column "id" (BIGINT): '
                                 'invalid value "abc"')
    assert query(pg_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'events'") == [(0,)]  # rolled back
    with pytest.raises(ValueError, match=r'^row 1,235 of '):  # the error past the budget (row 1,301 was the first)
        _load(pg_url, s3, dataset, files, max_errors=1)
    result = _load(pg_url, s3, dataset, files, max_errors=2)
    assert (result.rows, len(result.errors)) == (1497, 2)
    assert query(pg_url, "SELECT count(*) FROM events") == [(1497,)]


def _run(handler_context: Any, dart: Dart) -> None:
    HANDLER(handler_context, dart)  # type: ignore[arg-type]


def test_execute_sql_data_check_and_sql_errors(pg_url: str) -> None:
    dart = Dart()
    _run(context(pg_url, "execute_sql", {"sql_script": "CREATE SCHEMA work; CREATE TABLE work.t (x int);"}), dart)
    _run(context(pg_url, "execute_sql", {"sql_script": "INSERT INTO t VALUES (1), (2);"}, schema="work"), dart)
    _run(context(pg_url, "data_check", {"sql_script": "SELECT count(*) = 2 FROM t"}, schema="work"), dart)
    with pytest.raises(ActionFailure, match="^data_check: Data check failed$"):
        _run(context(pg_url, "data_check", {"sql_script": "SET LOCAL x.y = 1; SELECT sum(x) > 3 FROM t"},
                     schema="work"), dart)
    with pytest.raises(ActionFailure, match='^execute_sql: SQL error: relation "nope" does not exist$'):
        _run(context(pg_url, "execute_sql", {"sql_script": "INSERT INTO t VALUES (3); SELECT * FROM nope"},
                     schema="work"), dart)
    assert query(pg_url, "SELECT count(*) FROM work.t") == [(2,)]  # the failed script left nothing behind
    with pytest.raises(ActionFailure, match=r"^execute_sql: cannot connect to PostgreSQL postgres@127.0.0.1:1/"):
        _run(context(pg_url, "execute_sql", {"sql_script": "SELECT 1"}, port=1), dart)


@pytest.mark.parametrize(("gzip_it", "header"), [(True, False), (False, True)])
def test_copy_to_s3(pg_url: str, s3: Any, bucket: str, gzip_it: bool, header: bool) -> None:
    query(pg_url, "CREATE TABLE big AS SELECT g AS id, 'row ' || g AS label FROM generate_series(1, 100000) g")
    dart = Dart()
    args = {"source_sql_statement": "SELECT id, label FROM big ORDER BY id;", "gzip": gzip_it, "header": header,
            "destination_s3_path": f"s3://{bucket}/unload/{{YEAR}}/big_", "delimiter": ","}
    _run(context(pg_url, "copy_to_s3", args), dart)
    [obj] = s3.list_objects_v2(Bucket=bucket, Prefix="unload/")["Contents"]
    assert obj["Key"].endswith("/big_000" + (".gz" if gzip_it else ""))
    body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    lines = (gzip.decompress(body) if gzip_it else body).decode().splitlines()
    assert len(lines) == 100000 + header and lines[header] == "1,row 1" and lines[-1] == "100000,row 100000"
    assert dart.progress[-1][1]["rows"] == 100000
    with pytest.raises(ActionFailure, match="^copy_to_s3: SQL error: relation \"nope\" does not exist$"):
        _run(context(pg_url, "copy_to_s3", {**args, "source_sql_statement": "SELECT * FROM nope",
                                            "destination_s3_path": f"s3://{bucket}/never/x"}), dart)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="never/")
    with pytest.raises(ActionFailure, match="^copy_to_s3: cannot write s3://no-such-bucket-x/y000.gz: NoSuchBucket"):
        _run(context(pg_url, "copy_to_s3", {**args, "gzip": True, "destination_s3_path": "s3://no-such-bucket-x/y"}),
             dart)


def test_load_dataset_and_consume_subscription_handlers(pg_url: str, s3: Any, bucket: str) -> None:
    files = _put_files(s3, bucket, "CSV", "BZ2")
    dataset: dict[str, Any] = {"id": "d1", "data": dataset_for(f"s3://{bucket}/events", "CSV", "BZ2", COLUMNS)}
    dart = Dart({"/dataset/d1": dataset, "/subscription/s1": {"id": "s1", "data": {"dataset_id": "d1"}}},
                [{"s3_path": files[1][0], "file_size": files[1][1]}, {"s3_path": files[0][0], "file_size": 1}])
    load = context(pg_url, "load_dataset", {"dataset_id": "d1", "target_table_name": "loaded",
                                            "s3_path_regex_filter": "part-1$"})
    _run(load, dart)
    assert query(pg_url, "SELECT count(*), sum(id) FROM loaded") == [(2, 9)]
    consume = context(pg_url, "consume_subscription", {"subscription_id": "s1", "target_schema_name": "subs"})
    _run(consume, dart)
    assert consume.consume_subscription_state == "SUCCESS"
    assert query(pg_url, "SELECT count(*), sum(id) FROM subs.events") == [(5, 18)]
    again = context(pg_url, "consume_subscription", {"subscription_id": "s1", "target_schema_name": "subs"})
    _run(again, dart)  # the same elements handed to another action (a lost check-in): not loaded twice
    assert query(pg_url, "SELECT count(*) FROM subs.events") == [(5,)]
    assert dart.progress[-1][1]["files"] == 0
    missing = context(pg_url, "load_dataset", {"dataset_id": "d1"})
    dart.entities["/dataset/d1"] = {"id": "d1", "data": {**dataset["data"], "location": "s3://no-such-bucket-z/x"}}
    with pytest.raises(ActionFailure, match="^load_dataset: cannot list s3://no-such-bucket-z/x/: NoSuchBucket"):
        _run(missing, dart)


@pytest.fixture(scope="module")
def password_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster that checks passwords (scram-sha-256): the machine's server trusts every
    local connection, so a wrong password could not fail there."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("no PostgreSQL binaries (initdb) to start a cluster that checks passwords")
    # Under /tmp itself: the postgres user cannot enter pytest's per-user temporary folders.
    bindir, home = Path(bins[-1]).parent, Path(tempfile.mkdtemp(prefix="dart-pg-scram-"))
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
    (home / "pw").write_text("right-password\n")
    if prefix:
        for path in (home, home / "pw"):
            shutil.chown(path, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = home / "data"
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
                    f"--pwfile={home / 'pw'}"], check=True, capture_output=True)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(home / "log"), "-o",
                    f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_a_wrong_password_fails_in_one_line(password_server: str) -> None:
    port = int(password_server.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(ActionFailure, match=(
            rf'^execute_sql: cannot connect to PostgreSQL postgres@127.0.0.1:{port}/postgres: '
            r'password authentication failed for user "postgres"$')):
        _run(context(password_server, "execute_sql", {"sql_script": "SELECT 1"}, password="wrong"), Dart())
    _run(context(password_server, "execute_sql", {"sql_script": "SELECT 1"}, password="right-password"), Dart())
