"""The dataset guess (services/commands/dataset_guess.py): the inference rules on text, and the whole guess against a moto S3
server on loopback (the real wire protocol, no mocks)."""

from __future__ import annotations

import bz2
import gzip
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from services.adapters import s3_sample
from services.domain import dataset_guess as g
from services.domain import dataset_inference as inference
from services.domain.errors import BadRequest
from services.domain.schemas import DATASET_SCHEMA
from services.domain.schemas.validate import default_and_validate
from bench.harness.moto import AWS_ENV, moto_server

BUCKET = "lake"


def guessed(text: str, key: str = "warehouse/events/part-0.csv", max_lines: int = 100) -> dict[str, Any]:
    """The guess for an object holding ``text``, without S3."""
    raw = text.encode()
    sample = g.sample_lines([raw], key, "NONE", max_lines + 1, len(raw))
    result = inference.infer(sample.lines, key)
    if result.num_header_rows == 0 and len(sample.lines) > max_lines:
        sample.lines = sample.lines[:max_lines]
        result = inference.infer(sample.lines, key)
    return g.build(BUCKET, key, "NONE", result, sample, "tester")


def types(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["name"], c["data_type"]) for c in data["columns"]]


# ----------------------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize("value, kind", [
    ("42", "int"), ("-7", "int"), ("+3", "int"), ("0", "int"), ("9223372036854775807", "int"),
    ("9223372036854775808", "decimal"), ("1" * 39, "string"),
    ("007", "string"), ("02134", "string"),  # codes with leading zeros keep them
    ("1.5", "float"), ("-.5", "float"), ("1e10", "float"), ("2.5E-3", "float"), ("NaN", "float"),
    ("true", "bool"), ("FALSE", "bool"), ("t", "string"), ("1", "int"),  # 0/1 are numbers, not booleans
    ("2020-01-31", "date"), ("2020-02-30", "string"), ("2020-1-3", "string"),
    ("2020-01-31 10:11:12", "timestamp"), ("2020-01-31T10:11:12.123456789Z", "timestamp"),
    ("2020-01-31T10:11+02:00", "timestamp"), ("2020-01-31 25:00:00", "string"),
    ("", None), ("  ", None), ("\\N", None), ("NULL", None), ("null", None),
    ("hello", "string"), ("1,234", "string"), ("$5", "string"),
])
def test_text_kind(value: str, kind: str | None) -> None:
    assert inference.text_kind(value) == kind


def test_column_types_widen_over_every_sampled_value() -> None:
    def typed(*kinds_and_texts: tuple[str | None, str]) -> dict[str, Any]:
        col = inference.Column("c")
        for kind, text in kinds_and_texts:
            col.add(kind, text)
        return inference.merged_type(col)

    assert typed(("int", "1"), ("int", "2")) == {"data_type": "BIGINT"}
    assert typed(("int", "1"), ("float", "2.5")) == {"data_type": "DOUBLE"}
    assert typed(("int", "1"), ("decimal", "9" * 30)) == {"data_type": "NUMERIC", "precision": 38, "scale": 0}
    assert typed(("date", "2020-01-01"), ("timestamp", "2020-01-01 10:00")) == {"data_type": "TIMESTAMP"}
    assert typed(("bool", "true")) == {"data_type": "BOOLEAN"}
    assert typed(("bool", "true"), ("int", "1")) == {"data_type": "VARCHAR", "length": 256}
    assert typed(("int", "1"), ("string", "x" * 300)) == {"data_type": "VARCHAR", "length": 512}
    assert typed(("string", "é" * 200)) == {"data_type": "VARCHAR", "length": 512}  # UTF-8 bytes, not characters
    assert typed(("string", "x" * 70000)) == {"data_type": "STRING"}
    assert typed() == {"data_type": "VARCHAR", "length": 256}  # only nulls seen


@pytest.mark.parametrize("lines, delimiter", [
    (["a,b,c\n", "1,2,3\n"], ","),
    (["a\tb\tc\n", "1\t2\t3\n"], "\t"),
    (["a|b\n", "1|2\n"], "|"),
    (["a;b\n", "1,5;2,25\n", "3,5;4,75\n"], ";"),  # decimal commas: the semicolon splits consistently too
    (["a\x01b\n", "1\x012\n"], "\x01"),
    (["name\tcity\n", "Smith, John\tParis\n", "Doe, Jane\tRome\n"], "\t"),  # commas inside text
    (['id,comment\n', '1,"a; b; c"\n', '2,"d|e"\n'], ","),
    (["just one column\n", "and another line\n"], None),
])
def test_choose_delimiter(lines: list[str], delimiter: str | None) -> None:
    assert inference.choose_delimiter(lines) == delimiter


@pytest.mark.parametrize("rows, header", [
    ([["id", "amount", "day"], ["1", "2.5", "2020-01-01"], ["2", "3", "2020-01-02"]], True),
    ([["1", "2.5", "2020-01-01"], ["2", "3", "2020-01-02"]], False),
    ([["", "value"], ["0", "10"], ["1", "20"]], True),  # pandas' blank index header
    ([["code", "country"], ["US", "United States"], ["FR", "France"]], True),  # constant-width codes
    ([["DE", "Germany"], ["US", "United States"], ["FR", "France"]], False),
    ([["a", "a"], ["1", "2"]], False),  # duplicate names are no header
    ([["2019", "2020"], ["1", "2"]], False),  # numbers are no names
    ([["x", "y"], ["x", "3"], ["z", "4"]], False),  # the first value recurs below: data (1 vote to 1, no)
    ([["only", "row"]], False),
])
def test_has_header(rows: list[list[str]], header: bool) -> None:
    assert inference.has_header(rows) is header


@pytest.mark.parametrize("raw, name", [
    ("Order Date", "order_date"), ("orderDate", "order_date"), ("user-ID", "user_id"), ("1st place", "_1st_place"),
    ("  ", "fallback"), ("été", "t"), ("a" * 200, "a" * 127),
])
def test_identifier(raw: str, name: str) -> None:
    assert g.identifier(raw, "fallback") == name


def test_column_names_are_unique_and_fall_back_to_positions() -> None:
    cols = [inference.Column("Name"), inference.Column("name"), inference.Column(""), inference.Column("NAME")]
    assert g._column_names(cols) == ["name", "name_2", "col_3", "name_3"]


@pytest.mark.parametrize("key, name", [
    ("warehouse/events/part-0.csv", "events"),
    ("warehouse/Page Views/dt=2020-01-01/hour=03/part-0.csv", "page_views"),
    ("clicks/2020/01/31/part-0.gz", "clicks"),
    ("part-0.csv", "lake"),
])
def test_dataset_name_skips_partition_and_date_folders(key: str, name: str) -> None:
    assert g.dataset_name(BUCKET, key) == name


def test_compression_comes_from_the_content() -> None:
    assert g.detect_compression(gzip.compress(b"a,b\n"), "x.csv") == "GZIP"
    assert g.detect_compression(gzip.compress(b"a,b\n"), "x") == "GZIP"
    assert g.detect_compression(bz2.compress(b"a,b\n"), "x.txt") == "BZ2"
    assert g.detect_compression(b"a,b\n", "x.gz") == "NONE"  # a name is no proof
    assert g.detect_compression(b"ORCID,name\n", "x.csv") == "NONE"  # a header, not an ORC file
    with pytest.raises(BadRequest, match="SNAPPY"):
        g.detect_compression(b"\x00\x00\x01\x00garbage", "part-0.snappy")
    with pytest.raises(BadRequest, match="SNAPPY"):
        g.detect_compression(b"\xff\x06\x00\x00sNaPpY\x01...", "part-0")
    with pytest.raises(BadRequest, match="Parquet"):
        g.detect_compression(b"PAR1\x15\x04\x15\x10\x00", "part-0.parquet")
    with pytest.raises(BadRequest, match="Zstandard"):
        g.detect_compression(b"\x28\xb5\x2f\xfd\x00", "part-0.zst")


def test_csv_with_header_quotes_nulls_and_an_embedded_newline() -> None:
    data = guessed(
        'id,Customer Name,amount,signup,active\n'
        '1,"Smith, John",12.50,2020-01-01,true\n'
        '2,"Doe, ""JD"" Jane",\\N,2020-01-02,false\n'
        '3,"line one\nline two",7,\\N,true\n'
    )
    assert types(data) == [("id", "BIGINT"), ("customer_name", "VARCHAR"), ("amount", "DOUBLE"),
                           ("signup", "DATE"), ("active", "BOOLEAN")]
    fmt = data["data_format"]
    assert (fmt["row_format"], fmt["delimited_by"], fmt["num_header_rows"], fmt["quoted_by"], fmt["null_string"]) == \
        ("DELIMITED", ",", 1, '"', "\\N")
    assert [c["is_nullable"] for c in data["columns"]] == [False, False, True, True, False]
    assert data["location"] == "s3://lake/warehouse/events" and data["name"] == data["table_name"] == "events"
    assert data["load_type"] == "INSERT" and data["data_format"]["file_format"] == "TEXTFILE"


def test_headerless_tsv_gets_positional_names_and_short_rows_are_nullable() -> None:
    data = guessed("1\tx\t2020-01-01 10:00:00\n2\ty\t2020-01-02T11:00:00Z\n3\tz\n")
    assert types(data) == [("col_1", "BIGINT"), ("col_2", "VARCHAR"), ("col_3", "TIMESTAMP")]
    assert data["data_format"]["num_header_rows"] == 0 and data["data_format"]["delimited_by"] == "\t"
    assert [c["is_nullable"] for c in data["columns"]] == [False, False, True]


def test_json_lines_flatten_objects_into_paths() -> None:
    data = guessed(
        '{"id": 1, "user": {"name": "a", "signup": "2020-01-01"}, "tags": ["x"], "score": 1, "ok": true}\n'
        '{"id": 2, "user": {"name": "b", "signup": "2020-01-02", "weird key": 3}, "score": 2.5, "ok": null}\n'
        '\n'
        '{"id": 3, "user": {}, "score": null, "ok": false}\n'
    )
    assert data["data_format"]["row_format"] == "JSON" and data["data_format"]["delimited_by"] is None
    cols = {c["name"]: c for c in data["columns"]}
    assert [(n, c["data_type"], c["path"], c["is_nullable"]) for n, c in cols.items()] == [
        ("id", "BIGINT", "id", False),
        ("user_name", "VARCHAR", "user.name", True),
        ("user_signup", "DATE", "user.signup", True),
        ("tags", "VARCHAR", "tags", True),  # an array is loaded as its JSON text
        ("score", "DOUBLE", "score", True),
        ("ok", "BOOLEAN", "ok", True),
        ("user_weird_key", "BIGINT", "user['weird key']", True),
    ]


@pytest.mark.parametrize("text, message", [
    ('{\n  "a": 1\n}\n', "pretty-printed"),
    ('[{"a": 1}]\n', "JSON array"),
    ('{"a": 1}\n{"a": 2\n', "line 2 is not a JSON object"),
    ('{"a": 1}\n[1]\n', "not an object"),
])
def test_json_that_is_not_json_lines_is_refused(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        guessed(text)


def test_max_lines_bounds_the_sample_and_the_header_is_extra() -> None:
    text = "n\n" + "".join(f"{i}\n" for i in range(1, 11)) + "not a number\n"
    assert types(guessed(text, max_lines=10)) == [("n", "BIGINT")]
    assert types(guessed(text, max_lines=11)) == [("n", "VARCHAR")]
    assert "first 10 lines" in guessed("1,a\n2,b\n" * 20, max_lines=10)["description"]


def test_the_sample_drops_a_line_cut_by_the_byte_bound_and_reads_concatenated_members() -> None:
    raw = gzip.compress(b"a,b\n1,2\n") + gzip.compress(b"3,4\n5,6")
    sample = g.sample_lines([raw[:7], raw[7:]], "k", "GZIP", 100, len(raw))
    assert sample.lines == ["a,b\n", "1,2\n", "3,4\n", "5,6"] and sample.complete
    sample = g.sample_lines([b"a,b\n1,2\n3,"], "k", "NONE", 100, 1000)  # the object goes on past the read
    assert sample.lines == ["a,b\n", "1,2\n"] and not sample.complete


def test_a_decompression_bomb_stops_at_the_text_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(g, "MAX_TEXT_BYTES", 1_000_000)
    raw = bz2.compress(b"1,2\n" * 5_000_000)  # 20 MB of text in a few kB
    sample = g.sample_lines([raw], "k", "BZ2", 10_000_000, len(raw))
    assert sample.byte_capped and not sample.complete and len(sample.lines) == 250_000


def test_binary_and_utf16_objects_are_refused() -> None:
    with pytest.raises(BadRequest, match="NUL"):
        guessed("a,b\n\x00\x01,2\n")
    with pytest.raises(BadRequest, match="UTF-16"):
        g.sample_lines(["a,b\n".encode("utf-16")], "k", "NONE", 10, 100)


def test_every_guess_validates_against_the_dataset_schema() -> None:
    for text in ("a\n", "1\n", '{"a": null}\n', "x,y\n,\n", "a;b\n" + "é;" * 3 + "\n"):
        data = guessed(text)
        assert default_and_validate(data, DATASET_SCHEMA) == data


# ---------------------------------------------------------------------------------------- against S3


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(s3: Any, key: str, body: bytes | str) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


def test_the_first_data_object_skips_markers_empty_and_hidden_files(s3: Any) -> None:
    put(s3, "orders/", b"")
    put(s3, "orders/.part-0.csv.crc", b"\x00\x01crc")
    put(s3, "orders/_SUCCESS", b"")
    put(s3, "orders/_metadata", b"{}")
    put(s3, "orders/empty.csv", b"")
    put(s3, "orders/part-0.csv", "order_id,total\n1,9.99\n")
    put(s3, "orders/part-1.csv", "order_id,total\nx,y\n")
    assert s3_sample.first_object(s3, BUCKET, "orders/") == ("orders/part-0.csv", 22)
    assert s3_sample.first_object(s3, BUCKET, "orders") == ("orders/part-0.csv", 22)
    assert s3_sample.first_object(s3, BUCKET, "orders/_metadata") == ("orders/_metadata", 2)  # named exactly
    data = s3_sample.guess_dataset(s3, f"s3://{BUCKET}/orders/")
    assert types(data) == [("order_id", "BIGINT"), ("total", "DOUBLE")]
    assert data["location"] == f"s3://{BUCKET}/orders" and data["name"] == "orders"
    assert data["description"] == f"guessed from s3://{BUCKET}/orders/part-0.csv, the whole object"


def test_gzip_and_bz2_objects(s3: Any) -> None:
    text = "day|clicks\n2020-01-01|3\n2020-01-02|\n"
    put(s3, "clicks/gz/part-0.gz", gzip.compress(text.encode()))
    put(s3, "clicks/bz/part-0", bz2.compress(text.encode()))
    for prefix, compression in (("clicks/gz/", "GZIP"), ("clicks/bz/", "BZ2")):
        data = s3_sample.guess_dataset(s3, f"s3://{BUCKET}/{prefix}")
        assert data["compression"] == compression
        assert types(data) == [("day", "DATE"), ("clicks", "BIGINT")]
        assert data["data_format"]["delimited_by"] == "|" and data["columns"][1]["is_nullable"] is True


def test_json_lines_object(s3: Any) -> None:
    put(s3, "events/2020/01/part-0.json", '{"at": "2020-01-01T00:00:00Z", "n": 1}\n{"at": null, "n": 2}\n')
    data = s3_sample.guess_dataset(s3, f"s3://{BUCKET}/events/")
    assert data["data_format"]["row_format"] == "JSON" and data["name"] == "events"
    assert [(c["name"], c["data_type"], c["path"], c["is_nullable"]) for c in data["columns"]] == [
        ("at", "TIMESTAMP", "at", True), ("n", "BIGINT", "n", False)]
    assert data["location"] == f"s3://{BUCKET}/events/2020/01"


def test_a_huge_object_is_read_only_up_to_the_byte_bound(s3: Any) -> None:
    line = "1," + "x" * 2000 + "\n"
    put(s3, "huge/part-0.csv", line * 5000)  # 10 MB
    data = s3_sample.guess_dataset(s3, f"s3://{BUCKET}/huge/", max_lines=10_000)
    assert "the read stops at 4 MiB" in data["description"]
    lines = int(data["description"].split("first ")[1].split(" lines")[0])
    assert lines == g.MAX_OBJECT_BYTES // len(line)
    assert data["columns"][1] == {"name": "col_2", "data_type": "VARCHAR", "length": 2048, "is_nullable": False}


@pytest.mark.parametrize("s3_path, error, message", [
    (f"s3://{BUCKET}/nothing-here/", g.NothingToGuess, "has no object"),
    ("s3://no-such-bucket-anywhere/x", g.NothingToGuess, "no bucket"),
    (f"s3://{BUCKET}/markers/", g.NothingToGuess, "only empty objects"),
    ("http://lake/x", BadRequest, "s3_path: must be s3://bucket/prefix"),
    ("s3:///x", BadRequest, "not an S3 bucket name"),
    (None, BadRequest, "s3_path: required"),
])
def test_nothing_to_guess_and_bad_paths(s3: Any, s3_path: str | None, error: type, message: str) -> None:
    put(s3, "markers/", b"")
    put(s3, "markers/_SUCCESS", b"")
    with pytest.raises(error, match=message) as caught:
        s3_sample.guess_dataset(s3, s3_path)
    assert caught.value.status == (404 if error is g.NothingToGuess else 400)


@pytest.mark.parametrize("max_lines", [0, -1, 10_001])
def test_max_lines_out_of_bounds(s3: Any, max_lines: int) -> None:
    with pytest.raises(BadRequest, match="max_lines"):
        s3_sample.guess_dataset(s3, f"s3://{BUCKET}/orders/", max_lines)


def test_s3_that_does_not_answer_is_a_503() -> None:
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="y",
                          config=__import__("botocore.config", fromlist=["Config"]).Config(
                              retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(g.S3Unavailable) as caught:
        s3_sample.guess_dataset(client, "s3://lake/x")
    assert caught.value.status == 503


def test_the_guess_is_json(s3: Any) -> None:
    data = s3_sample.guess_dataset(s3, f"s3://{BUCKET}/orders/")
    assert json.loads(json.dumps(data)) == data
