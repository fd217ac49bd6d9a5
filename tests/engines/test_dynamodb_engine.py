"""The dynamodb_engine's actions against moto's DynamoDB and S3 servers over loopback: 100,000 items from a gzip
CSV and 20,000 from JSON lines (counted and spot-checked) with the capacity raised and restored as DescribeTable shows
it, create/delete, the type mapping, re-runs writing the same items, UnprocessedItems and throttling answered
by a fault-injecting proxy in front of moto, pacing, and bad input failing in one line."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
import zlib
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

import boto3
import pytest

from engines.data.datasets import Column, RowError
from engines.data.s3 import utcnow
from engines.dynamodb.attributes import ItemBuilder
from engines.dynamodb.engine import HANDLER
from engines.dynamodb.table import RESTORE_TAG
from engines.dynamodb.writer import Pacer
from engines.sdk import ActionContext, ActionFailure
from tests.engines.conftest import compress, dataset_for, encode_rows
from tests.engines.pgsupport import Dart

BIG = 100_000
JSON_ROWS = BIG  # issue 13: 100,000 items from a gzip CSV dataset and from a JSON-lines dataset
COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "data_type": "BIGINT"}, {"name": "name", "data_type": "STRING"},
    {"name": "amount", "data_type": "NUMERIC", "precision": 12, "scale": 2}, {"name": "ratio", "data_type": "DOUBLE"},
    {"name": "active", "data_type": "BOOLEAN"}, {"name": "day", "data_type": "DATE"},
    {"name": "ts", "data_type": "TIMESTAMP"}, {"name": "note", "data_type": "STRING"}]
NAMES = [c["name"] for c in COLUMNS]


def _row(i: int, name: str | None = None) -> list[Any]:
    return [i, name or f"name {i}", f"{i % 1000}.25", i / 8, i % 3 == 0, f"2026-01-{i % 28 + 1:02d}",
            f"2026-01-01 {i % 24:02d}:{i % 60:02d}:00", None if i % 10 == 0 else f'note, "{i}"']


def _expected(i: int, name: str | None = None) -> dict[str, Any]:
    """The item of _row(i) as read back, numbers as Decimal."""
    item = {"id": Decimal(i), "name": name or f"name {i}", "amount": Decimal(f"{i % 1000}.25"),
            "ratio": Decimal(repr(i / 8)), "active": i % 3 == 0, "day": f"2026-01-{i % 28 + 1:02d}",
            "ts": f"2026-01-01T{i % 24:02d}:{i % 60:02d}:00"}
    if i % 10:
        item["note"] = f'note, "{i}"'
    return item


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """An item as DynamoDB returns it, with N as Decimal (moto may keep "1.50" where DynamoDB says 1.5)."""
    return {k: Decimal(v["N"]) if "N" in v else next(iter(v.values())) for k, v in item.items()}


@pytest.fixture
def dynamodb(aws_env: dict[str, str]) -> Any:
    return boto3.client("dynamodb", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture
def table(dynamodb: Any) -> Iterator[str]:
    """A fresh table name; whatever the test made of it is deleted after (the moto server is the session's)."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    for found in dynamodb.list_tables()["TableNames"]:
        if found.startswith(name):
            dynamodb.delete_table(TableName=found)


def _put(s3: Any, bucket: str, key: str, rows: list[list[Any]], fmt: str = "CSV", compression: str = "GZIP") -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=compress(encode_rows(rows, NAMES, fmt), compression))


def _dart(location: str, table: str, fmt: str = "CSV", compression: str = "GZIP", columns: Any = None,
          **fields: Any) -> Dart:
    data = dataset_for(location, fmt, compression, columns or COLUMNS, table_name=table,
                       **{"distribution_keys": ["id"], **fields})
    return Dart({"/dataset/d1": {"id": "d1", "data": data}})


def _run(dart: Dart, action_type: str, args: dict[str, Any] | None = None, **options: Any) -> Any:
    action = {"id": uuid.uuid4().hex[:12], "data": {"action_type_name": action_type, "args": args or {}}}
    store = {"id": "store1", "data": {"engine_name": "dynamodb_engine", "args": {"dataset_id": "d1", **options}}}
    HANDLER(ActionContext({"id": "e1", "data": {}}, action, store), dart)  # type: ignore[arg-type]
    return dart.progress[-1][1]


def _count(dynamodb: Any, table: str) -> int:
    """Scan with Select=COUNT, every page. moto answers COUNT with every item too (10,000 items take seconds to
    serialize), so a filter no item passes keeps the answers small; ScannedCount still counts every item. (moto
    sorts the whole table for every page, so 100,000 items take some 10 to 20 s: segments would only add pages.)"""
    total = 0
    more: dict[str, Any] = {}
    while True:
        page = dynamodb.scan(TableName=table, Select="COUNT", FilterExpression="attribute_not_exists(id)", **more)
        total += page["ScannedCount"]
        if "LastEvaluatedKey" not in page:
            return total
        more = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def _item_count(dynamodb: Any, table: str) -> int:
    """DescribeTable's ItemCount: exact on moto (AWS refreshes it about every six hours), and a fraction of the
    time of a counting Scan of 100,000 items on moto, which sorts the whole table for every page."""
    return int(dynamodb.describe_table(TableName=table)["Table"]["ItemCount"])


def _items(dynamodb: Any, table: str) -> dict[Decimal, dict[str, Any]]:
    found = [_plain(i) for i in dynamodb.get_paginator("scan").paginate(TableName=table).build_full_result()["Items"]]
    return {i["id"]: i for i in found}


def _get(dynamodb: Any, table: str, i: int) -> dict[str, Any]:
    return _plain(dynamodb.get_item(TableName=table, Key={"id": {"N": str(i)}}, ConsistentRead=True)["Item"])


def _write_capacity(dynamodb: Any, table: str) -> int:
    return int(dynamodb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"])


def _tags(dynamodb: Any, table: str) -> dict[str, str]:
    arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
    return {t["Key"]: t["Value"] for t in dynamodb.list_tags_of_resource(ResourceArn=arn).get("Tags") or []}


class _CapacityWatch:
    """Every distinct write capacity DescribeTable shows while the block runs, in order."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb, self.table, self.seen = dynamodb, table, [_write_capacity(dynamodb, table)]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.done.wait(0.05):
            units = _write_capacity(self.dynamodb, self.table)
            if units != self.seen[-1]:
                self.seen.append(units)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        units = _write_capacity(self.dynamodb, self.table)
        if units != self.seen[-1]:
            self.seen.append(units)


@pytest.mark.slow
def test_100k_items_from_gzip_csv_with_the_capacity_raised_for_the_load_and_restored(
        dynamodb: Any, s3: Any, bucket: str, table: str) -> None:
    half = BIG // 2
    _put(s3, bucket, "big/part-0.csv.gz", [_row(i) for i in range(half)])
    _put(s3, bucket, "big/part-1.csv.gz", [_row(i) for i in range(half, BIG)])
    dart = _dart(f"s3://{bucket}/big", table)
    created = _run(dart, "create_table", {"read_capacity_units": 3, "write_capacity_units": 5})
    assert created == {"table": table, "key": {"id": "N"}, "created": True}
    reports = len(dart.progress)
    with _CapacityWatch(dynamodb, table) as watch:
        result = _run(dart, "load_dataset", {"initial_write_capacity_units": 40000,
                                             "write_capacity_utilization_percent": 1.5})
    assert watch.seen == [5, 40000, 5]  # raised for the load, restored after
    assert (result["files"], result["rows"], result["items_written"]) == (2, BIG, BIG)
    assert result["write_capacity"] == {"before": 5, "during": 40000, "after": 5}
    assert [p for p, _ in dart.progress[reports:]] == [0.475, 0.95, 1.0]  # a file at a time
    assert RESTORE_TAG not in _tags(dynamodb, table)
    assert _item_count(dynamodb, table) == BIG
    for i in (0, 1, 7, 10, half - 1, half, 77_777, BIG - 1):
        assert _get(dynamodb, table, i) == _expected(i), i
    throughput = dynamodb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]
    assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (3, 5)


def test_json_lines_into_a_hash_and_sort_key_table(
        dynamodb: Any, s3: Any, bucket: str, table: str) -> None:
    now = utcnow()
    _put(s3, bucket, f"json/{now.year}/part-0.json", [_row(i) for i in range(JSON_ROWS)], "JSON", "NONE")
    _put(s3, bucket, f"json/{now.year + 1}/part-0.json", [_row(i) for i in range(10)], "JSON", "NONE")
    next_year = int((datetime(now.year + 1, 1, 2) - now).total_seconds())  # {YEAR} moved to next year
    dart = _dart(f"s3://{bucket}/json", table, "JSON", "NONE", sort_keys=["day"])
    _run(dart, "create_table", {"read_capacity_units": 1, "write_capacity_units": 1})
    key = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
    assert key == [{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "day", "KeyType": "RANGE"}]
    result = _run(dart, "load_dataset", {"s3_path_end_prefix_exclusive": f"s3://{bucket}/json/{{YEAR}}",
                                         "s3_path_end_prefix_exclusive_date_offset_in_seconds": next_year,
                                         "initial_write_capacity_units": 40000,
                                         "final_write_capacity_units": 2,
                                         "write_capacity_utilization_percent": 1.5})
    assert (result["files"], result["rows"]) == (1, JSON_ROWS)  # next year's file is past the end
    assert _write_capacity(dynamodb, table) == 2  # final_write_capacity_units wins over what it was
    assert _item_count(dynamodb, table) == JSON_ROWS
    for i in (0, 10, 4242, JSON_ROWS - 1):
        found = dynamodb.get_item(TableName=table, Key={"id": {"N": str(i)}, "day": {"S": _expected(i)["day"]}})
        assert _plain(found["Item"]) == _expected(i), i


def test_create_and_delete_table_are_safe_to_rerun(dynamodb: Any, table: str) -> None:
    dart = _dart("s3://unused-bucket/x", table, primary_keys=["name"], distribution_keys=[])
    assert _run(dart, "create_table", {"read_capacity_units": 4, "write_capacity_units": 6},
                target_sort_key="day")["created"] is True
    described = dynamodb.describe_table(TableName=table)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "name", "KeyType": "HASH"},
                                      {"AttributeName": "day", "KeyType": "RANGE"}]
    assert sorted((d["AttributeName"], d["AttributeType"]) for d in described["AttributeDefinitions"]) == [
        ("day", "S"), ("name", "S")]
    assert (described["ProvisionedThroughput"]["ReadCapacityUnits"],
            described["ProvisionedThroughput"]["WriteCapacityUnits"]) == (4, 6)
    again = _run(dart, "create_table", {"read_capacity_units": 4, "write_capacity_units": 6}, target_sort_key="day")
    assert again["created"] is False  # a re-run (its check-in lost) finds its table
    with pytest.raises(ActionFailure, match=rf'^create_table: DynamoDB table "{table}" already exists with key '
                                            r"name \(S\), day \(S\), not name \(S\)$"):
        _run(dart, "create_table", {"read_capacity_units": 4, "write_capacity_units": 6})
    other = f"{table}_b"
    assert _run(dart, "create_table", {"read_capacity_units": 1, "write_capacity_units": 1},
                target_table_name=other, target_distribution_key="active")["key"] == {"active": "N"}
    assert _run(dart, "delete_table", target_table_name=other) == {"table": other, "deleted": True}
    assert _run(dart, "delete_table") == {"table": table, "deleted": True}
    assert _run(dart, "delete_table") == {"table": table, "deleted": False}
    assert table not in dynamodb.list_tables()["TableNames"]


def test_the_type_mapping() -> None:
    specs: list[dict[str, Any]] = [
        {"name": "k", "data_type": "VARCHAR", "length": 2}, {"name": "i", "data_type": "INT"},
        {"name": "s", "data_type": "SMALLINT"}, {"name": "f", "data_type": "FLOAT"},
        {"name": "n", "data_type": "NUMERIC", "precision": 5, "scale": 2}, {"name": "big", "data_type": "NUMERIC"},
        {"name": "b", "data_type": "BOOLEAN"}, {"name": "d", "data_type": "DATE", "date_pattern": "dd/MM/yyyy"},
        {"name": "t", "data_type": "TIMESTAMP"}, {"name": "dt", "data_type": "DATETIME",
                                                   "date_pattern": "yyyy-MM-dd'T'HH:mm:ss"},
        {"name": "req", "data_type": "STRING", "is_nullable": False}]
    columns = [Column.from_dict(c) for c in specs]
    builder = ItemBuilder(columns, {"k": "S"})
    key, item = builder.build(["abcdef", "-2147483648", "7", "1e300", "123.455", "1234567890123.123456789012",
                               "YES", "31/01/2026", "2026-01-31 13:45:00.5+02:00", "2026-01-31T13:45:00", ""],
                              2, "s3://b/f")
    assert key == ("abcdef",)  # VARCHAR's length is not DynamoDB's business
    assert item == {"k": {"S": "abcdef"}, "i": {"N": "-2147483648"}, "s": {"N": "7"}, "f": {"N": "1e+300"},
                    "n": {"N": "123.46"}, "big": {"N": "1234567890123.1234567890"}, "b": {"BOOL": True},
                    "d": {"S": "2026-01-31"}, "t": {"S": "2026-01-31T13:45:00.500000+02:00"},
                    "dt": {"S": "2026-01-31T13:45:00"}, "req": {"S": ""}}
    _, sparse = builder.build(["k", None, None, None, None, None, "f", None, None, None, "x"], 3, "s3://b/f")
    assert sparse == {"k": {"S": "k"}, "b": {"BOOL": False}, "req": {"S": "x"}}  # NULLs omitted

    def refused(index: int, value: str | None) -> str:
        values: list[str | None] = ["k", None, None, None, None, None, None, None, None, None, "x"]
        values[index] = value
        with pytest.raises(RowError) as caught:
            builder.build(values, 9, "s3://b/f")
        return str(caught.value)

    assert refused(1, "abc") == 'row 9 of s3://b/f: column "i" (INT): invalid value "abc"'
    assert refused(1, "2147483648") == 'row 9 of s3://b/f: column "i" (INT): value "2147483648" is out of range for INT'
    assert refused(3, "nan") == 'row 9 of s3://b/f: column "f" (FLOAT): invalid value "nan" (DynamoDB numbers are finite)'
    assert refused(4, "1000") == 'row 9 of s3://b/f: column "n" (NUMERIC(5,2)): value "1000" is out of range for NUMERIC(5,2)'
    assert refused(6, "maybe") == 'row 9 of s3://b/f: column "b" (BOOLEAN): invalid value "maybe"'
    assert refused(7, "2026-01-31") == ('row 9 of s3://b/f: column "d" (DATE): invalid value "2026-01-31" for '
                                        'date_pattern "dd/MM/yyyy"')
    assert refused(8, "yesterday") == 'row 9 of s3://b/f: column "t" (TIMESTAMP): invalid value "yesterday" (not an ISO timestamp)'
    assert refused(10, None) == 'row 9 of s3://b/f: column "req" (STRING): NULL in a column that is not nullable'
    assert refused(0, None) == 'row 9 of s3://b/f: column "k" (VARCHAR(2)): a key attribute cannot be NULL'
    big = ["k", None, None, None, None, None, None, None, None, None, "x" * 410_000]
    with pytest.raises(RowError, match=r"^row 4 of s3://b/f: the item is 410,00\d bytes, more than DynamoDB's 400 KB$"):
        builder.build(big, 4, "s3://b/f")
    # A BOOLEAN key is N 1/0 (the original's mapping); a number column fills an S key as its text.
    as_keys = ItemBuilder(columns, {"b": "N", "i": "S"})
    assert as_keys.build(["k", "42", None, None, None, None, "true", None, None, None, "x"], 2, "p")[0] == ("1", "42")
    text_as_number = ItemBuilder(columns, {"k": "N"})  # a VARCHAR column fills an N key with its number
    assert text_as_number.build([" 12 ", *[None] * 9, "x"], 2, "p")[1]["k"] == {"N": "12"}
    with pytest.raises(RowError, match=r'column "k" \(VARCHAR\(2\)\): invalid value "ab" for the table\'s number key'):
        text_as_number.build(["ab", *[None] * 9, "x"], 2, "p")
    with pytest.raises(ValueError, match=r"^the table's key attribute\(s\) nope are not columns of the dataset"):
        ItemBuilder(columns, {"nope": "S"})


def test_a_rerun_writes_the_same_items_and_the_last_row_of_a_key_wins(
        dynamodb: Any, s3: Any, bucket: str, table: str) -> None:
    # Keys 0..199 twice in the first file and once more in the second: the last row read is the item.
    _put(s3, bucket, "dup/part-0.csv.gz", [_row(i % 200, f"first {i}") for i in range(400)])
    _put(s3, bucket, "dup/part-1.csv.gz", [_row(i, f"second {i}") for i in range(100)])
    dart = _dart(f"s3://{bucket}/dup", table)
    _run(dart, "create_table", {"read_capacity_units": 1, "write_capacity_units": 1})
    expected = {Decimal(i): _expected(i, f"second {i}" if i < 100 else f"first {i + 200}") for i in range(200)}
    for _ in range(2):
        result = _run(dart, "load_dataset", {"initial_write_capacity_units": 40000})
        assert result["rows"] == 500
        assert _items(dynamodb, table) == expected


class _FaultyDynamoDB(ThreadingHTTPServer):
    """A proxy in front of moto's DynamoDB that answers every 5th BatchWriteItem with a throttling error (botocore
    retries those) and holds back half the items of every other one as UnprocessedItems (the engine's to
    retry): the faults real DynamoDB gives a loader, on the real wire."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.calls = self.throttled = self.held = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _FaultyDynamoDB

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        held: dict[str, list[Any]] = {}
        if self.headers.get("X-Amz-Target", "").endswith(".BatchWriteItem"):
            with self.server.lock:
                self.server.calls += 1
                call = self.server.calls
            if call % 5 == 0:
                with self.server.lock:
                    self.server.throttled += 1
                return self._answer(400, {"__type": "com.amazonaws.dynamodb.v20120810#"
                                                    "ProvisionedThroughputExceededException",
                                          "message": "The level of configured provisioned throughput is exceeded"})
            if call % 2 == 0:
                request = json.loads(body)
                for name, puts in request["RequestItems"].items():
                    cut = len(puts) // 2
                    if cut:
                        request["RequestItems"][name], held[name] = puts[:cut], puts[cut:]
                with self.server.lock:
                    self.server.held += sum(map(len, held.values()))
                body = json.dumps(request).encode()
        upstream = http.client.HTTPConnection(self.server.upstream.netloc, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        upstream.request("POST", self.path, body, headers)
        answer = upstream.getresponse()
        data = json.loads(answer.read() or b"{}")
        upstream.close()
        if held and answer.status == 200:
            data["UnprocessedItems"] = held
        self._answer(answer.status, data)

    def _answer(self, status: int, data: Any) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("x-amz-crc32", str(zlib.crc32(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def faulty(moto_url: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[_FaultyDynamoDB]:
    proxy = _FaultyDynamoDB(moto_url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)  # the engine's DynamoDB; S3 stays on moto
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_unprocessed_items_and_throttling_are_retried_until_every_item_is_in(
        faulty: _FaultyDynamoDB, dynamodb: Any, s3: Any, bucket: str, table: str) -> None:
    _put(s3, bucket, "flaky/part-0.csv.gz", [_row(i) for i in range(600)])
    dart = _dart(f"s3://{bucket}/flaky", table)
    _run(dart, "create_table", {"read_capacity_units": 1, "write_capacity_units": 1})
    result = _run(dart, "load_dataset", {"initial_write_capacity_units": 40000})
    assert faulty.throttled > 0 and faulty.held > 0
    assert result["retried_items"] == faulty.held  # every held-back item was sent again
    assert result["items_written"] == 600
    assert _items(dynamodb, table) == {Decimal(i): _expected(i) for i in range(600)}


def test_writes_are_paced_to_the_utilization_of_the_provisioned_capacity(
        dynamodb: Any, s3: Any, bucket: str, table: str) -> None:
    _put(s3, bucket, "paced/part-0.csv.gz", [_row(i) for i in range(150)])
    dart = _dart(f"s3://{bucket}/paced", table)
    _run(dart, "create_table", {"read_capacity_units": 1, "write_capacity_units": 100})
    result = _run(dart, "load_dataset", {"write_capacity_utilization_percent": 1.0})
    assert result["write_rate_limit"] == 100.0 and result["write_capacity"] == {
        "before": 100, "during": 100, "after": 100}
    assert result["paced_seconds"] > 0  # 150 units at 100 a second, 1 s of burst: half a second of waits at least
    assert _count(dynamodb, table) == 150


def test_the_pacer_holds_units_to_the_rate_with_a_second_of_burst() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(10.0, burst=1.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        pacer.take(25)  # 2.5 s worth each
    assert slept == [1.5, 2.5, 2.5, 2.5]  # the first batch spends the burst
    pacer.charge(5)  # the last batch consumed 30 units, not 25
    pacer.take(10)
    assert slept[-1] == 1.5 and pacer.waited == pytest.approx(10.5)
    unlimited = Pacer(None, sleep=sleep)
    unlimited.take(10**6)
    assert len(slept) == 5


def test_a_failed_load_still_restores_the_capacity_and_names_the_bad_row(
        dynamodb: Any, s3: Any, bucket: str, table: str) -> None:
    rows = [_row(i) for i in range(400)]
    rows[300][2] = "abc"
    _put(s3, bucket, "bad/part-0.csv", rows, compression="NONE")
    dart = _dart(f"s3://{bucket}/bad", table, compression="NONE")
    _run(dart, "create_table", {"read_capacity_units": 1, "write_capacity_units": 5})
    with _CapacityWatch(dynamodb, table) as watch, pytest.raises(ActionFailure) as failed:
        _run(dart, "load_dataset", {"initial_write_capacity_units": 1000})
    assert str(failed.value) == (f'load_dataset: row 302 of s3://{bucket}/bad/part-0.csv: column "amount" '
                                 '(NUMERIC(12,2)): invalid value "abc"')  # the header is row 1
    assert watch.seen == [5, 1000, 5]
    assert RESTORE_TAG not in _tags(dynamodb, table)
    # A fixed file's re-run writes every item, over the ones the failed run wrote.
    rows[300][2] = "300.25"
    _put(s3, bucket, "bad/part-0.csv", rows, compression="NONE")
    assert _run(dart, "load_dataset", {"initial_write_capacity_units": 1000})["items_written"] == 400
    assert _count(dynamodb, table) == 400


def test_the_rerun_of_a_killed_load_restores_the_capacity_the_killed_one_found(
        dynamodb: Any, s3: Any, bucket: str, table: str) -> None:
    _put(s3, bucket, "kill/part-0.csv.gz", [_row(i) for i in range(50)])
    dart = _dart(f"s3://{bucket}/kill", table)
    _run(dart, "create_table", {"read_capacity_units": 1, "write_capacity_units": 7})
    # What a SIGKILLed load leaves (tests/engines/test_dynamodb_end_to_end.py kills a real one): the promise
    # tagged, then the capacity raised.
    arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
    dynamodb.tag_resource(ResourceArn=arn, Tags=[{"Key": RESTORE_TAG, "Value": "7"}])
    dynamodb.update_table(TableName=table, ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 900})
    result = _run(dart, "load_dataset", {"initial_write_capacity_units": 900})
    assert result["write_capacity"] == {"before": 900, "during": 900, "after": 7}
    assert _write_capacity(dynamodb, table) == 7 and RESTORE_TAG not in _tags(dynamodb, table)


def test_bad_input_fails_with_a_one_line_cause(dynamodb: Any, s3: Any, bucket: str, table: str) -> None:
    _put(s3, bucket, "in/part-0.csv.gz", [_row(i) for i in range(5)] + [[None, *_row(5)[1:]]])

    def failure(dart: Dart, action_type: str, args: dict[str, Any] | None = None, **options: Any) -> str:
        with pytest.raises(ActionFailure) as caught:
            _run(dart, action_type, args, **options)
        return str(caught.value)

    dart = _dart(f"s3://{bucket}/in", table)
    assert failure(dart, "load_dataset") == (f'load_dataset: DynamoDB table "{table}" does not exist '
                                             "(create_table creates it)")
    assert failure(dart, "create_table", {"read_capacity_units": 1, "write_capacity_units": 1},
                   target_distribution_key="nope").startswith(
        'create_table: the hash key "nope" is not a column of dataset ds_')
    keyless = _dart(f"s3://{bucket}/in", table, distribution_keys=[])
    assert failure(keyless, "create_table", {"read_capacity_units": 1, "write_capacity_units": 1}).startswith(
        "create_table: a DynamoDB table needs a hash key: set the datastore's target_distribution_key or the "
        "distribution_keys of dataset ds_")
    _run(dart, "create_table", {"read_capacity_units": 1, "write_capacity_units": 1})
    assert failure(dart, "load_dataset") == (f"load_dataset: row 7 of s3://{bucket}/in/part-0.csv.gz: "
                                             'column "id" (BIGINT): a key attribute cannot be NULL')
    nowhere = _dart("s3://no-such-bucket-ddb-test/x", table)
    assert failure(nowhere, "load_dataset").startswith(
        "load_dataset: cannot list s3://no-such-bucket-ddb-test/x/: NoSuchBucket")
    other = _dart(f"s3://{bucket}/in", table, columns=COLUMNS[1:])
    assert failure(other, "load_dataset").startswith(
        "load_dataset: the table's key attribute(s) id are not columns of the dataset (name, amount")
    assert _write_capacity(dynamodb, table) == 1
