"""The shared dataset layer against moto's S3: the range selects the subscription listing's files, objects are
streamed and decompressed, rows are parsed per the dataset, and a bad row is named by number, file and column."""

from __future__ import annotations

import bz2
import gzip
from datetime import datetime
from typing import Any

import pytest

from engines.data import s3 as s3_hook
from engines.data.datasets import Column, Dataset, RowError, ValueConverter, strptime_pattern
from engines.data.readers import DataFileError, json_path, partition_values, read_rows
from services.domain.s3_range import Range
from tests.engines.conftest import compress, dataset_for, encode_rows

COLUMNS: list[dict[str, Any]] = [{"name": "id", "data_type": "BIGINT"}, {"name": "name", "data_type": "VARCHAR", "length": 20},
           {"name": "amount", "data_type": "NUMERIC", "precision": 10, "scale": 2}]
ROWS: list[list[Any]] = [[1, "a, with comma", "1.50"], [2, 'quote " inside', "2.25"], [3, None, "3.00"]]


def _put(s3: Any, bucket: str, key: str, body: bytes) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


@pytest.mark.parametrize("fmt", ["CSV", "JSON", "PARQUET"])
@pytest.mark.parametrize("compression", ["NONE", "GZIP", "BZ2"])
def test_rows_of_every_format_and_compression(s3: Any, bucket: str, fmt: str, compression: str) -> None:
    if fmt == "PARQUET" and compression != "NONE":
        pytest.skip("Parquet compresses inside the file (SNAPPY here)")
    body = compress(encode_rows(ROWS, ["id", "name", "amount"], fmt), compression)
    path = _put(s3, bucket, "data/part-0", body)
    dataset = Dataset.from_api(dataset_for(f"s3://{bucket}/data", fmt, compression, COLUMNS))
    rows = [values for _, values in read_rows(dataset, s3, path)]
    assert rows == [["1", "a, with comma", "1.50"], ["2", 'quote " inside', "2.25"], ["3", None, "3.00"]]


def test_range_selects_what_the_subscription_listing_selects(s3: Any, bucket: str) -> None:
    for key in ["logs/2026/01/a.gz", "logs/2026/02/b.gz", "logs/2026/02/c.txt", "logs/2026/03/d.gz",
                "logs2/x.gz", "logs/"]:
        _put(s3, bucket, key, b"x" * 3)
    args = {"s3_path_start_prefix_inclusive": f"s3://{bucket}/logs/{{YEAR}}/02",
            "s3_path_start_prefix_inclusive_date_offset_in_seconds": 0,
            "s3_path_end_prefix_exclusive": f"s3://{bucket}/logs/2026/03",
            "s3_path_regex_filter": r"\.gz$"}
    scope = s3_hook.resolve_range(f"s3://{bucket}/logs/", args, datetime(2026, 2, 14))
    assert scope == Range(f"s3://{bucket}/logs", f"s3://{bucket}/logs/2026/02",
                          f"s3://{bucket}/logs/2026/03", r"\.gz$")
    assert list(s3_hook.list_range(s3, scope, page_size=2)) == [(f"s3://{bucket}/logs/2026/02/b.gz", 3)]
    everything = s3_hook.resolve_range(f"s3://{bucket}/logs", {}, datetime(2026, 2, 14))
    assert [p for p, _ in s3_hook.list_range(s3, everything)] == [
        f"s3://{bucket}/logs/2026/01/a.gz", f"s3://{bucket}/logs/2026/02/b.gz",
        f"s3://{bucket}/logs/2026/02/c.txt", f"s3://{bucket}/logs/2026/03/d.gz"]


def test_date_offsets_move_each_token_on_its_own() -> None:
    args = {"s3_path_end_prefix_exclusive": "s3://b/l/{YEAR}-{MONTH}-{DAY}",
            "s3_path_end_prefix_exclusive_date_offset_in_seconds": -86400,
            "s3_path_regex_filter": "{HOUR}:{MINUTE}:{SECOND}"}
    scope = s3_hook.resolve_range("s3://b/l", args, datetime(2026, 3, 1, 4, 5, 6))
    assert (scope.end, scope.regex) == ("s3://b/l/2026-02-28", "04:05:06")


def test_concatenated_gzip_members_and_big_objects_stream(s3: Any, bucket: str) -> None:
    lines = b"".join(b"%d,row\n" % i for i in range(200_000))
    path = _put(s3, bucket, "big.gz", gzip.compress(lines[:1000]) + gzip.compress(lines[1000:]))
    with s3_hook.open_object(s3, path, "GZIP") as stream:
        assert stream.read() == lines
    path = _put(s3, bucket, "big.bz2", bz2.compress(lines))
    with s3_hook.open_object(s3, path, "BZ2") as stream:
        assert sum(1 for _ in stream) == 200_000


def test_header_rows_nulls_escapes_and_blank_lines(s3: Any, bucket: str) -> None:
    body = b"h1\nh2\n1|y|a\\|b\n\n2|x|NULL\n"
    path = _put(s3, bucket, "t/f.txt", body)
    dataset = Dataset.from_api(dataset_for(f"s3://{bucket}/t", "CSV", "NONE", [
        {"name": "a", "data_type": "INT"}, {"name": "b"}, {"name": "c"}],
        data_format={"file_format": "TEXTFILE", "row_format": "DELIMITED", "delimited_by": "|",
                     "escaped_by": "\\", "null_string": "NULL", "num_header_rows": 2}))
    assert list(read_rows(dataset, s3, path)) == [(3, ["1", "y", "a|b"]), (5, ["2", "x", None])]


def test_hive_escaped_nulls_are_matched_before_unescaping(s3: Any, bucket: str) -> None:
    # Hive's LazySimpleSerDe defaults: \N is null, a backslash escapes the delimiter, a newline and itself;
    # a literal "N" and an escaped "\\N" (backslash, N) are data.
    body = b"1\tN\t\\N\n2\t\\N\ta\\\tb\n3\t\\\\N\tline\\\nbreak\n"
    path = _put(s3, bucket, "h/f.tsv", body)
    dataset = Dataset.from_api(dataset_for(f"s3://{bucket}/h", "CSV", "NONE", [
        {"name": "a", "data_type": "INT"}, {"name": "b"}, {"name": "c"}],
        data_format={"file_format": "TEXTFILE", "row_format": "DELIMITED", "delimited_by": "\t",
                     "escaped_by": "\\", "null_string": "\\N", "num_header_rows": 0}))
    assert list(read_rows(dataset, s3, path)) == [
        (1, ["1", "N", None]), (2, ["2", None, "a\tb"]), (4, ["3", "\\N", "line\nbreak"])]


def test_regex_lines_become_columns_and_a_line_that_does_not_match_is_named(s3: Any, bucket: str) -> None:
    log = (b'10.0.0.1 - - [06/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 512\n'
           b'10.0.0.2 - - [06/Dec/2026:10:00:01 +0000] "POST /b HTTP/1.1" 404 -\n')
    columns = [{"name": "ip"}, {"name": "ts"}, {"name": "request"}, {"name": "status", "data_type": "INT"},
               {"name": "size", "data_type": "BIGINT"}]
    regex = r'(\S+) \S+ \S+ \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-)'
    dataset = Dataset.from_api(dataset_for(f"s3://{bucket}/r", "CSV", "NONE", columns, data_format={
        "file_format": "TEXTFILE", "row_format": "REGEX", "regex_input": regex, "null_string": "-"}))
    path = _put(s3, bucket, "r/access.log", log)
    assert list(read_rows(dataset, s3, path)) == [
        (1, ["10.0.0.1", "06/Dec/2026:10:00:00 +0000", "GET /a HTTP/1.1", "200", "512"]),
        (2, ["10.0.0.2", "06/Dec/2026:10:00:01 +0000", "POST /b HTTP/1.1", "404", None])]
    bad = _put(s3, bucket, "r/bad.log", log + b"garbage\n")
    with pytest.raises(RowError, match=f"row 3 of {bad}: line does not match data_format.regex_input"):
        list(read_rows(dataset, s3, bad))
    wrong = Dataset.from_api(dataset_for(f"s3://{bucket}/r", "CSV", "NONE", columns[:2], data_format={
        "file_format": "TEXTFILE", "row_format": "REGEX", "regex_input": regex}))
    with pytest.raises(DataFileError, match="has 5 group.s. where the dataset has 2 column.s."):
        list(read_rows(wrong, s3, path))


def test_a_row_with_the_wrong_number_of_fields_is_named(s3: Any, bucket: str) -> None:
    path = _put(s3, bucket, "d/part-3.csv.gz", gzip.compress(b"id,name,amount\n1,a,2\n" + b"2,b\n"))
    dataset = Dataset.from_api(dataset_for(f"s3://{bucket}/d", "CSV", "GZIP", COLUMNS))
    with pytest.raises(RowError) as caught:
        list(read_rows(dataset, s3, path))
    assert str(caught.value) == (f"row 3 of {path}: 2 field(s) where the dataset has 3 column(s) "
                                 "(id, name, amount)")


def test_a_file_that_is_not_what_the_dataset_says(s3: Any, bucket: str) -> None:
    path = _put(s3, bucket, "d/plain.csv", b"id,name,amount\n1,a,2\n")
    dataset = Dataset.from_api(dataset_for(f"s3://{bucket}/d", "CSV", "GZIP", COLUMNS))
    with pytest.raises(DataFileError, match="cannot decompress as GZIP"):
        list(read_rows(dataset, s3, path))
    parquet = Dataset.from_api(dataset_for(f"s3://{bucket}/d", "PARQUET", "NONE", COLUMNS + [{"name": "x"}]))
    path = _put(s3, bucket, "d/p.parquet", encode_rows(ROWS, ["id", "name", "amount"], "PARQUET"))
    with pytest.raises(DataFileError, match="has no column.s. x"):
        list(read_rows(parquet, s3, path))


def test_json_paths_and_partitions(s3: Any, bucket: str) -> None:
    body = b'{"a": {"b": [10, 20]}, "flag": true, "o": {"k": 1}}\n{"a": {}}\n'
    path = _put(s3, bucket, "j/day=2026-01-02/hour=07/f.json", body)
    dataset = Dataset.from_api(dataset_for(f"s3://{bucket}/j", "JSON", "NONE", [
        {"name": "second", "data_type": "INT", "path": "$.a.b[1]"}, {"name": "flag", "data_type": "BOOLEAN"},
        {"name": "o", "path": "o"}], partitions=[{"name": "day", "data_type": "DATE"}, {"name": "hour"}],
        hive_compatible_partition_folders=True))
    assert list(read_rows(dataset, s3, path)) == [
        (1, ["20", "true", '{"k":1}', "2026-01-02", "07"]), (2, [None, None, None, "2026-01-02", "07"])]
    assert json_path(Column("x", "INT", path="a[2].b")) == ["a", 2, "b"]
    positional = Dataset.from_api(dataset_for("s3://b/loc", "CSV", "NONE", COLUMNS,
                                              partitions=[{"name": "p1"}, {"name": "p2"}]))
    assert partition_values(positional, "s3://b/loc/x/y/z/f.csv") == ["x", "y"]


def test_sql_types_and_conversions() -> None:
    specs: list[dict[str, Any]] = [
        {"name": "s", "data_type": "STRING"}, {"name": "v", "data_type": "VARCHAR", "length": 3},
        {"name": "n", "data_type": "NUMERIC", "precision": 12, "scale": 4},
        {"name": "d", "data_type": "DATE", "date_pattern": "dd/MM/yyyy"},
        {"name": "t", "data_type": "TIMESTAMP", "date_pattern": "YYYY-MM-DD HH24:MI:SS", "is_nullable": False}]
    columns = tuple(Column.from_dict(c) for c in specs)
    assert [c.sql_definition() for c in columns] == [
        '"s" TEXT', '"v" VARCHAR(3)', '"n" NUMERIC(12,4)', '"d" DATE', '"t" TIMESTAMP NOT NULL']
    assert strptime_pattern("yyyy-MM-dd'T'HH:mm:ss.SSS") == "%Y-%m-%dT%H:%M:%S.%f"
    converter = ValueConverter(columns, truncate_columns=True)
    assert converter.convert(["x", "abcd", "1.5", "31/12/2026", "2026-01-02 03:04:05"], 7, "s3://b/f") == [
        "x", "abc", "1.5", "2026-12-31", "2026-01-02 03:04:05"]
    with pytest.raises(RowError, match=r'^row 1,234 of s3://b/f: column "d" \(DATE\): invalid value "2026-12-31"'):
        converter.convert(["x", "a", "1", "2026-12-31", "2026-01-02 03:04:05"], 1234, "s3://b/f")
    with pytest.raises(RowError, match=r'column "t" \(TIMESTAMP\): NULL in a column that is not nullable'):
        converter.convert(["x", "a", "1", None, None], 1, "s3://b/f")


def test_multipart_writer_uploads_in_parts_and_aborts_on_error(s3: Any, bucket: str) -> None:
    path = f"s3://{bucket}/out/big.bin"
    with s3_hook.MultipartWriter(s3, path, part_size=5 * 1024 * 1024) as out:
        for _ in range(12):
            out.write(b"z" * 1024 * 1024)
    assert len(out.parts) == 3
    assert s3.head_object(Bucket=bucket, Key="out/big.bin")["ContentLength"] == 12 * 1024 * 1024
    with pytest.raises(RuntimeError), s3_hook.MultipartWriter(s3, f"s3://{bucket}/out/never") as out:
        out.write(b"partial")
        raise RuntimeError("boom")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="out/never")
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
