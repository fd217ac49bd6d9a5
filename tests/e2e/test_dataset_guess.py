"""``GET /dataset/guess`` end to end: `dart up` as a real process reading a moto S3 server on loopback through
DART_AWS_ENDPOINT_URL, called over HTTP like the UI or a script would; each guess is POSTed back as a dataset."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import RunningDart
from bench.harness.moto import AWS_ENV, moto_server

BUCKET = "guess-lake"
SAMPLES = {
    "sales/csv/part-00000.csv": (
        "sale_id,Store Name,amount,sold_on,refunded\n"
        '1,"Main St, #4",19.99,2020-03-01,false\n'
        "2,Airport,5,2020-03-02,\n"
        "3,Airport,,2020-03-02,true\n"
    ).encode(),
    "visits/tsv/dt=2020-03-01/part-00000.tsv": b"1001\t2020-03-01 10:00:00\tde\n1002\t2020-03-01 10:05:30\tfr\n",
    "sales/gz/part-00000.csv.gz": gzip.compress(b"sale_id,amount\n1,2.50\n2,3.75\n"),
    "clicks/jsonl/part-00000.json": (
        b'{"click_id": 1, "user": {"id": 7, "country": "DE"}, "at": "2020-03-01T10:00:00Z"}\n'
        b'{"click_id": 2, "user": {"id": 8}, "at": "2020-03-01T10:00:01Z"}\n'
    ),
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    with moto_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket=BUCKET)
        for key, body in SAMPLES.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        s3.put_object(Bucket=BUCKET, Key="sales/csv/_SUCCESS", Body=b"")
        s3.put_object(Bucket=BUCKET, Key="empty/", Body=b"")
        home: Path = tmp_path_factory.mktemp("dart-guess")
        dart = RunningDart(home, None, DART_AWS_ENDPOINT_URL=endpoint, **AWS_ENV)
        try:
            yield dart
        finally:
            dart.stop()


def guess(dart: RunningDart, prefix: str, **params: Any) -> dict[str, Any]:
    status, body = dart.api().request("GET", "/dataset/guess", params={"s3_path": f"s3://{BUCKET}/{prefix}", **params})
    assert status == 200, body
    assert set(body) == {"results"} and set(body["results"]) == {"data"}
    return body["results"]["data"]


def columns(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(c["name"], c["data_type"], c["is_nullable"]) for c in data["columns"]]


def posts_back(dart: RunningDart, data: dict[str, Any]) -> None:
    created = dart.api().post("/dataset", {"data": data})
    stored = dart.api().get(f"/dataset/{created['id']}")["data"]
    assert {k: v for k, v in stored.items() if k != "user_id"} == {k: v for k, v in data.items() if k != "user_id"}


def test_csv_with_a_header(lake: RunningDart) -> None:
    data = guess(lake, "sales/csv/")
    assert columns(data) == [("sale_id", "BIGINT", False), ("store_name", "VARCHAR", False),
                             ("amount", "DOUBLE", True), ("sold_on", "DATE", False), ("refunded", "BOOLEAN", True)]
    assert data["data_format"] == {"file_format": "TEXTFILE", "row_format": "DELIMITED", "num_header_rows": 1,
                                   "delimited_by": ",", "quoted_by": '"', "escaped_by": None, "null_string": None,
                                   "regex_input": None, "regex_output": None}
    assert (data["name"], data["table_name"], data["location"], data["compression"], data["load_type"]) == \
        ("csv", "csv", f"s3://{BUCKET}/sales/csv", "NONE", "INSERT")
    assert data["description"] == f"guessed from s3://{BUCKET}/sales/csv/part-00000.csv, the whole object"
    posts_back(lake, data)


def test_tsv_without_a_header_under_a_partition_folder(lake: RunningDart) -> None:
    data = guess(lake, "visits/tsv")
    assert columns(data) == [("col_1", "BIGINT", False), ("col_2", "TIMESTAMP", False), ("col_3", "VARCHAR", False)]
    assert data["data_format"]["delimited_by"] == "\t" and data["data_format"]["num_header_rows"] == 0
    assert data["location"] == f"s3://{BUCKET}/visits/tsv/dt=2020-03-01" and data["name"] == "tsv"
    posts_back(lake, data)


def test_gzip_csv(lake: RunningDart) -> None:
    data = guess(lake, "sales/gz/part-", max_lines=1)
    assert data["compression"] == "GZIP"
    assert columns(data) == [("sale_id", "BIGINT", False), ("amount", "DOUBLE", False)]
    assert data["description"].endswith("its first 2 lines")  # the header, and max_lines=1 data line
    posts_back(lake, data)


def test_json_lines(lake: RunningDart) -> None:
    data = guess(lake, "clicks/jsonl/")
    assert data["data_format"]["row_format"] == "JSON"
    assert [(c["name"], c["data_type"], c["path"], c["is_nullable"]) for c in data["columns"]] == [
        ("click_id", "BIGINT", "click_id", False), ("user_id", "BIGINT", "user.id", False),
        ("user_country", "VARCHAR", "user.country", True), ("at", "TIMESTAMP", "at", False)]
    posts_back(lake, data)


@pytest.mark.parametrize("params, status, message", [
    ({"s3_path": f"s3://{BUCKET}/no/such/prefix/"}, 404, "nothing to guess from"),
    ({"s3_path": f"s3://{BUCKET}/empty/"}, 404, "only empty objects"),
    ({"s3_path": "s3://no-such-guess-bucket/x"}, 404, "no bucket"),
    ({}, 400, "s3_path: required"),
    ({"s3_path": "/sales/csv/"}, 400, "s3_path: must be s3://bucket/prefix"),
    ({"s3_path": "s3://"}, 400, "s3_path:"),
    ({"s3_path": f"s3://{BUCKET}/sales/csv/", "max_lines": "0"}, 400, "max_lines"),
    ({"s3_path": f"s3://{BUCKET}/sales/csv/", "max_lines": "-5"}, 400, "max_lines"),
    ({"s3_path": f"s3://{BUCKET}/sales/csv/", "max_lines": "ten"}, 400, "max_lines"),
    ({"s3_path": f"s3://{BUCKET}/sales/csv/", "max_lines": "1.5"}, 400, "max_lines"),
    ({"s3_path": f"s3://{BUCKET}/sales/csv/", "max_lines": "100001"}, 400, "max_lines"),
    ({"s3_path": f"s3://{BUCKET}/sales/csv/", "limit": "3"}, 400, "unknown parameter"),
])
def test_refusals_name_the_problem(lake: RunningDart, params: dict[str, str], status: int, message: str) -> None:
    got, body = lake.api().request("GET", "/dataset/guess", params=params)
    assert got == status, body
    assert body["results"] == "ERROR" and message in body["error_message"]


def test_the_guess_needs_an_api_key(lake: RunningDart) -> None:
    status, _ = lake.api(None, None).request("GET", "/dataset/guess", params={"s3_path": f"s3://{BUCKET}/sales/"})
    assert status == 401


def test_guess_is_not_taken_for_a_dataset_id(lake: RunningDart) -> None:
    status, body = lake.api().request("PUT", "/dataset/guess", {"data": {}})
    assert status == 405
    status, body = lake.api().request("GET", "/dataset/GUESS")
    assert status == 404 and "dataset 'GUESS' not found" in body["error_message"]
