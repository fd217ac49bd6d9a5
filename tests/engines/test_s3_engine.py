"""The s3_engine's actions against moto's S3: copies (single, recursive, multipart, parallel, re-run) and data
checks; its registration validates the original's workflows' args and fixes its schema bug."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jsonschema
import pytest

from engines.data.s3 import S3Error, utcnow
from engines.s3.definition import COPY_PARAMS, DATA_CHECK_PARAMS, s3_engine
from engines.s3.engine import copy_paths, find_match


def _keys(s3: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents") or []
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in found}


def test_recursive_copy_keeps_relative_keys_and_a_rerun_overwrites(s3: Any, bucket: str) -> None:
    for i in range(25):
        s3.put_object(Bucket=bucket, Key=f"in/day/{i:02d}.txt", Body=b"x" * i)
    s3.put_object(Bucket=bucket, Key="in/", Body=b"")  # a folder marker is not copied as a file
    for _ in range(2):
        assert copy_paths(s3, f"s3://{bucket}/in/", f"s3://{bucket}/out/", True, workers=4) == (25, 300)
    copied = _keys(s3, bucket, "out/")
    assert len(copied) == 25 and copied["out/day/07.txt"] == b"x" * 7
    acl = s3.get_object_acl(Bucket=bucket, Key="out/day/07.txt")
    assert any(g["Permission"] == "FULL_CONTROL" for g in acl["Grants"])


def test_single_and_multipart_copies(s3: Any, bucket: str) -> None:
    body = bytes(range(256)) * (6 * 4096)  # 6 MiB: above the lowered threshold, in two 5 MiB parts
    s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    assert copy_paths(s3, f"s3://{bucket}/big.bin", f"s3://{bucket}/copy/big.bin", False,
                      threshold=5 * 1024 * 1024, part_size=5 * 1024 * 1024) == (1, len(body))
    assert s3.get_object(Bucket=bucket, Key="copy/big.bin")["Body"].read() == body
    with pytest.raises(S3Error, match=r"cannot read s3://.*/missing.bin: 404"):
        copy_paths(s3, f"s3://{bucket}/missing.bin", f"s3://{bucket}/x", False)
    with pytest.raises(S3Error, match="cannot list s3://no-such-bucket-here/x: NoSuchBucket"):
        copy_paths(s3, "s3://no-such-bucket-here/x", f"s3://{bucket}/x", True)


def test_data_check(s3: Any, bucket: str) -> None:
    now = datetime(2026, 5, 4, 3, 2, 1)
    s3.put_object(Bucket=bucket, Key="logs/2026-05-03/a.gz", Body=b"x" * 10)
    s3.put_object(Bucket=bucket, Key="logs/2026-05-03/b.txt", Body=b"x" * 100)
    yesterday = {"s3_path_prefix": f"s3://{bucket}/logs/{{YEAR}}-{{MONTH}}-{{DAY}}/",
                 "date_offset_in_seconds": -86400}
    assert find_match(s3, yesterday, now) == f"s3://{bucket}/logs/2026-05-03/a.gz"
    assert find_match(s3, {**yesterday, "s3_path_regex": r".*\.gz$", "min_file_size_in_bytes": 11}, now) is None
    assert find_match(s3, {**yesterday, "min_file_size_in_bytes": 11}, now) == \
        f"s3://{bucket}/logs/2026-05-03/b.txt"
    # re.match, as the original: the regex is anchored at the path's start
    assert find_match(s3, {**yesterday, "s3_path_regex": r"b\.txt"}, now) is None
    assert find_match(s3, {**yesterday, "date_offset_in_seconds": 0}, now) is None
    recent = {"s3_path_prefix": f"s3://{bucket}/logs/", "s3_file_last_modified": True,
              "date_offset_in_seconds": -86400}
    assert find_match(s3, recent, utcnow()) is not None
    assert find_match(s3, {**recent, "date_offset_in_seconds": 3600}, utcnow()) is None


def test_schemas_validate_the_originals_args_and_refuse_bad_ones() -> None:
    jsonschema.validate({"from_path": "s3://a/b", "to_path": "s3://c/d", "recursive": None}, COPY_PARAMS)
    for bad in ({"from_path": "s3://a/b"}, {"from_path": "s3://a", "to_path": "s3://b", "extra": 1},
                {"from_path": "/local", "to_path": "s3://b"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, COPY_PARAMS)
    jsonschema.validate({"s3_path_prefix": "s3://b/{YEAR}", "s3_path_regex": None, "min_file_size_in_bytes": 5,
                         "date_offset_in_seconds": -3600, "s3_file_last_modified": False}, DATA_CHECK_PARAMS)
    body = s3_engine()
    assert [t["name"] for t in body["supported_action_types"]] == ["copy", "data_check"]
    assert body["ecs_task_definition"]["containerDefinitions"][0]["environment"][0]["value"] == "worker:engine_s3"
