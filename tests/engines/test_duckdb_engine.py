"""The duckdb_engine's actions on a DuckDB file in a temporary folder and moto's S3: every format x
compression x load type with the data checked, MERGE and RELOAD_* exactly, bad input failing in one line with
nothing half-loaded, copy_to_s3 as CSV and Parquet, and two processes on one file taking turns."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from engines.duckdb.engine import HANDLER
from engines.duckdb.hook import data_folder, database_path
from engines.sdk import ActionContext, ActionFailure
from tests.engines.conftest import dataset_for
from tests.engines.pgsupport import Dart
from tests.engines.test_postgresql_engine import COLUMNS, EXPECTED, _put_files

FORMATS = [
    ("CSV", "NONE"),
    ("CSV", "GZIP"),
    ("CSV", "BZ2"),
    ("JSON", "NONE"),
    ("JSON", "GZIP"),
    ("JSON", "BZ2"),
    ("PARQUET", "NONE"),
]
BEFORE = (
    "INSERT INTO events VALUES (1, 'a', 10, '2026-01-01'), (2, 'b', 1, '2026-01-02'), "
    "(3, 'c', 1, '2026-01-03')"
)
EXPECTED_INSERT = sorted([(1, "a", 10.0, 1), (2, "b", 1.0, 2), (3, "c", 1.0, 3)] + EXPECTED["RELOAD_ALL"])


class Mart(Dart):
    """The dart calls the handlers make, with the datastore patches they send."""

    def __init__(self, entities: dict[str, Any] | None = None, elements: list[dict[str, Any]] | None = None):
        super().__init__(entities, elements)
        self.patches: list[dict[str, Any]] = []

    def patch_datastore(self, datastore_id: str, **fields: Any) -> dict[str, Any]:
        self.patches.append(fields)
        return {}


def _context(path: Path, action_type: str, args: dict[str, Any], **options: Any) -> ActionContext:
    action = {"id": uuid.uuid4().hex[:12], "data": {"action_type_name": action_type, "args": args}}
    store = {"id": "store1", "data": {"engine_name": "duckdb_engine", "args": {"path": str(path), **options}}}
    return ActionContext({"id": "e1", "data": {}}, action, store)


def _run(context: ActionContext, dart: Dart) -> None:
    HANDLER(context, dart)  # type: ignore[arg-type]


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path)) as conn:
        return conn.execute(sql).fetchall()


def _table(path: Path, table: str = "events") -> list[tuple[Any, ...]]:
    return [
        (r[0], r[1], float(r[2]), r[3].day) for r in _query(path, f"SELECT * FROM {table} ORDER BY id, name")
    ]


@pytest.fixture
def mart(tmp_path: Path) -> Path:
    return tmp_path / "mart.duckdb"


def _load(mart: Path, dart: Dart, dataset_id: str = "d1", action_id: str | None = None, **args: Any) -> Any:
    context = _context(mart, "load_dataset", {"dataset_id": dataset_id, **args})
    if action_id:
        context.action["id"] = action_id
    _run(context, dart)
    return dart.progress[-1][1]


@pytest.mark.parametrize("load_type", ["INSERT", "MERGE", "RELOAD_ALL", "RELOAD_LAST"])
@pytest.mark.parametrize(("fmt", "compression"), FORMATS)
def test_every_format_compression_and_load_type(
    mart: Path, s3: Any, bucket: str, fmt: str, compression: str, load_type: str
) -> None:
    files = _put_files(s3, bucket, fmt, compression)
    data = dataset_for(
        f"s3://{bucket}/events", fmt, compression, COLUMNS, load_type=load_type, merge_keys=["id"]
    )
    dart = Mart({"/dataset/d1": {"id": "d1", "data": data}})
    _load(mart, dart, s3_path_regex_filter="nothing-matches$", action_id="create")  # creates the table
    _query(mart, BEFORE)
    result = _load(mart, dart)
    assert (result["files"], result["rows"]) == ((1, 2) if load_type == "RELOAD_LAST" else (2, 5))
    assert _table(mart) == (EXPECTED_INSERT if load_type == "INSERT" else EXPECTED[load_type])
    assert _query(
        mart, "SELECT s3_path FROM dart_tracking.loaded_files WHERE action_id <> 'create' ORDER BY 1"
    ) == [(p,) for p, _ in (files[-1:] if load_type == "RELOAD_LAST" else files)]
    assert dart.patches[-1] == {"connection_url": f"duckdb://{mart}"}  # where the mart is, for its users


def test_merge_ties_by_batch_merge_sort_keys_then_the_last_row_read(mart: Path, s3: Any, bucket: str) -> None:
    _put_files(s3, bucket, "JSON", "NONE")
    data = dataset_for(
        f"s3://{bucket}/events",
        "JSON",
        "NONE",
        COLUMNS,
        load_type="MERGE",
        primary_keys=["id"],
        batch_merge_sort_keys=["amount ASC"],
    )
    dart = Mart({"/dataset/d1": {"id": "d1", "data": data}})
    _load(mart, dart)
    assert _table(mart)[2] == (4, "d-low", 1.0, 4)  # the lowest amount ranks first
    dart.entities["/dataset/d1"] = {"id": "d1", "data": {**data, "batch_merge_sort_keys": []}}
    _load(mart, dart, batch_size=1)
    assert _table(mart) == EXPECTED["MERGE"][1:]  # file by file, the later file wins


def test_a_rerun_of_the_same_action_loads_nothing_and_reload_keeps_the_old_table_on_failure(
    mart: Path, s3: Any, bucket: str
) -> None:
    files = _put_files(s3, bucket, "CSV", "NONE")
    data = dataset_for(
        f"s3://{bucket}/events", "CSV", "NONE", COLUMNS, load_type="RELOAD_ALL", primary_keys=["id", "name"]
    )
    dart = Mart({"/dataset/d1": {"id": "d1", "data": data}})
    _load(mart, dart, action_id="first")
    s3.put_object(Bucket=bucket, Key="events/part-2", Body=b"id,name,amount,day\n9,z,x,01/01/2026\n")
    with pytest.raises(
        ActionFailure,
        match=r'^load_dataset: row 2 of s3://.*/events/part-2: column "amount" '
        r'\(NUMERIC\(10,2\)\): invalid value "x"$',
    ):
        _load(mart, dart, action_id="second")
    assert _table(mart) == EXPECTED["RELOAD_ALL"]  # the old rows, untouched
    s3.delete_object(Bucket=bucket, Key="events/part-2")
    for _ in range(2):
        assert _load(mart, dart, action_id="third")["rows"] == 5
    assert _table(mart) == EXPECTED["RELOAD_ALL"]
    assert _query(mart, "SELECT action_id, files, rows FROM dart_tracking.loads ORDER BY 1") == [
        ("first", 2, 5),
        ("third", 2, 5),
    ]
    assert len(files) == 2 and _query(
        mart, "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%dart_new'"
    ) == [(0,)]


def test_bad_rows_are_named_and_max_errors_skips_them(mart: Path, s3: Any, bucket: str) -> None:
    lines = ["id,name,amount,day"] + [f"{i},n{i},{i}.5,01/02/2026" for i in range(1, 1500)]
    lines[1234] = "abc,n,1,01/02/2026"
    lines[1300] = "1300,n,1,2026-02-01"
    s3.put_object(Bucket=bucket, Key="bad/part-3.csv.gz", Body=gzip.compress("\n".join(lines).encode()))
    dart = Mart(
        {"/dataset/d1": {"id": "d1", "data": dataset_for(f"s3://{bucket}/bad", "CSV", "GZIP", COLUMNS)}}
    )
    with pytest.raises(ActionFailure) as caught:
        _load(mart, dart)
    assert str(caught.value) == (
        f'load_dataset: row 1,235 of s3://{bucket}/bad/part-3.csv.gz: column "id" '
        '(BIGINT): invalid value "abc"'
    )
    assert _query(mart, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events'") == [
        (0,)
    ]  # rolled back
    with pytest.raises(
        ActionFailure,
        match=r"^load_dataset: row 1,301 of .*: column \"day\" \(DATE\): invalid value "
        r"\"2026-02-01\" for date_pattern \"dd/MM/yyyy\"$",
    ):
        _load(mart, dart, max_errors=1)
    result = _load(mart, dart, max_errors=2)
    assert (result["rows"], result["skipped_rows"]) == (1497, 2)
    assert _query(mart, "SELECT count(*), sum(id) FROM events") == [(1497, sum(range(1, 1500)) - 1234 - 1300)]
    short = dataset_for(f"s3://{bucket}/bad", "CSV", "GZIP", COLUMNS[:2])
    dart.entities["/dataset/d1"] = {"id": "d1", "data": short}
    with pytest.raises(
        ActionFailure,
        match=r"^load_dataset: row 2 of .*part-3.csv.gz: 4 field\(s\) where the "
        r"dataset has 2 column\(s\) \(id, name\)$",
    ):
        _load(mart, dart)
    dart.entities["/dataset/d1"] = {"id": "d1", "data": {**short, "location": "s3://no-such-bucket-dd/x"}}
    with pytest.raises(
        ActionFailure, match="^load_dataset: cannot list s3://no-such-bucket-dd/x/: NoSuchBucket"
    ):
        _load(mart, dart)


def test_consume_subscription_loads_the_assigned_elements_once(mart: Path, s3: Any, bucket: str) -> None:
    files = _put_files(s3, bucket, "CSV", "BZ2")
    dataset = {"id": "d1", "data": dataset_for(f"s3://{bucket}/events", "CSV", "BZ2", COLUMNS)}
    dart = Mart(
        {"/dataset/d1": dataset, "/subscription/s1": {"id": "s1", "data": {"dataset_id": "d1"}}},
        [{"s3_path": files[1][0], "file_size": files[1][1]}, {"s3_path": files[0][0], "file_size": 1}],
    )
    for files_loaded in (
        2,
        0,
    ):  # the same elements handed to another action (a lost check-in): not loaded twice
        consume = _context(
            mart, "consume_subscription", {"subscription_id": "s1", "target_schema_name": "subs"}
        )
        _run(consume, dart)
        assert consume.consume_subscription_state == "SUCCESS"
        assert dart.progress[-1][1]["files"] == files_loaded
    assert _query(mart, "SELECT count(*), sum(id) FROM subs.events") == [(5, 18)]


def test_execute_sql_data_check_and_sql_errors(mart: Path) -> None:
    dart = Mart()
    _run(
        _context(
            mart, "execute_sql", {"sql_script": "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);"}
        ),
        dart,
    )
    _run(_context(mart, "data_check", {"sql_script": "SELECT count(*) = 2 FROM t"}), dart)
    with pytest.raises(ActionFailure, match="^data_check: Data check failed$"):
        _run(_context(mart, "data_check", {"sql_script": "SELECT sum(x) > 3 FROM t"}), dart)
    with pytest.raises(
        ActionFailure, match="^execute_sql: SQL error: Catalog Error: Table with name nope does not exist!$"
    ):
        _run(
            _context(mart, "execute_sql", {"sql_script": "INSERT INTO t VALUES (3); SELECT * FROM nope"}),
            dart,
        )
    assert _query(mart, "SELECT count(*) FROM t") == [(2,)]  # the failed script left nothing behind
    with pytest.raises(
        ActionFailure, match='^execute_sql: SQL error: Parser Error: syntax error at or near "SELEC"$'
    ):
        _run(_context(mart, "execute_sql", {"sql_script": "SELEC 1"}), dart)


@pytest.mark.parametrize(
    ("file_format", "gzip_it", "header"),
    [("CSV", True, False), ("CSV", False, True), ("PARQUET", True, False)],
)
def test_copy_to_s3(mart: Path, s3: Any, bucket: str, file_format: str, gzip_it: bool, header: bool) -> None:
    _query(
        mart,
        "CREATE TABLE big AS SELECT g AS id, 'row ' || g AS label, g / 4 AS q FROM range(1, 100001) t(g)",
    )
    dart = Mart()
    args = {
        "source_sql_statement": "SELECT id, label, q FROM big ORDER BY id;",
        "gzip": gzip_it,
        "header": header,
        "destination_s3_path": f"s3://{bucket}/unload/{{YEAR}}/big_",
        "delimiter": ",",
        "file_format": file_format,
    }
    _run(_context(mart, "copy_to_s3", args), dart)
    [obj] = s3.list_objects_v2(Bucket=bucket, Prefix="unload/")["Contents"]
    body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    assert dart.progress[-1][1]["rows"] == 100000
    if file_format == "PARQUET":
        assert obj["Key"].endswith("/big_000.parquet")
        table = pq.read_table(io.BytesIO(body))
        assert table.num_rows == 100000 and table.column("label")[99999].as_py() == "row 100000"
        return
    assert obj["Key"].endswith("/big_000" + (".gz" if gzip_it else ""))
    lines = (gzip.decompress(body) if gzip_it else body).decode().splitlines()
    assert (
        len(lines) == 100000 + header
        and lines[header] == '1,"row 1",0.25'
        and lines[-1] == '100000,"row 100000",25000'
    )  # Arrow's CSV quotes every string
    with pytest.raises(ActionFailure, match="^copy_to_s3: SQL error: Catalog Error: Table with name nope"):
        _run(
            _context(
                mart,
                "copy_to_s3",
                {
                    **args,
                    "source_sql_statement": "SELECT * FROM nope",
                    "destination_s3_path": f"s3://{bucket}/never/x",
                },
            ),
            dart,
        )
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="never/")


HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_two_processes_on_one_file_take_turns_and_a_long_wait_fails_in_one_line(mart: Path) -> None:
    duckdb.connect(str(mart)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(mart), "1.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        dart = Mart()
        with pytest.raises(
            ActionFailure,
            match=rf"^execute_sql: the DuckDB file {mart} is still in use by another "
            rf"process \(pid {holder.pid}\) after 0.2 s$",
        ):
            _run(_context(mart, "execute_sql", {"sql_script": "SELECT 1"}, lock_timeout_seconds=0.2), dart)
        started = time.monotonic()
        _run(
            _context(mart, "execute_sql", {"sql_script": "CREATE TABLE waited (x int)"}), dart
        )  # waits its turn
        assert time.monotonic() - started > 0.5 and holder.wait(5) == 0
    finally:
        holder.kill()
    assert _query(mart, "SELECT count(*) FROM waited") == [(0,)]


def test_the_default_file_is_per_datastore_under_dart_home(tmp_path: Path) -> None:
    store = {"id": "ds-7", "data": {"args": {}}}
    assert database_path(store, {"DART_HOME": str(tmp_path)}) == tmp_path / "engines/duckdb/ds-7.duckdb"
    assert (
        database_path({"id": "x", "data": {"args": {"path": "marts/a.db"}}}, {"DART_HOME": str(tmp_path)})
        == tmp_path / "engines/duckdb/marts/a.db"
    )
    assert data_folder({}) == Path.home() / ".dart/engines/duckdb"
