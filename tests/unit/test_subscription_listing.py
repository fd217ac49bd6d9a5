"""The range rules of a subscription (reference §9.1, §9.2) and the shapes of its element events, without S3."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.commands.elements import common_prefix
from services.delivery.s3_notifications import parse_notification
from services.domain.s3_range import (
    MAX_KEYS_PER_EVENT,
    MAX_SUFFIX_BYTES,
    ListingError,
    Range,
    _before,
    chunks,
    substitute_tokens,
)

NOW = datetime(2026, 3, 7, 4, 5, 9, tzinfo=UTC)


def test_tokens_are_replaced_with_zero_padded_utc_parts() -> None:
    assert substitute_tokens("s3://b/{YEAR}/{MONTH}/{DAY}/{HOUR}{MINUTE}{SECOND}", NOW) == "s3://b/2026/03/07/040509"
    assert substitute_tokens(None, NOW) is None


def test_range_rules() -> None:
    scope = Range.resolve("s3://b/impala/", {"s3_path_start_prefix_inclusive": "s3://b/impala/impala",
                                             "s3_path_end_prefix_exclusive": "s3://b/impala/install",
                                             "s3_path_regex_filter": r".*\.rpm"}, NOW)
    assert scope.root == "s3://b/impala" and scope.prefix == "s3://b/impala/"
    assert scope.matches("s3://b/impala/impala")  is False  # not an .rpm
    assert scope.matches("s3://b/impala/impala.rpm")  # the start prefix is inclusive
    assert scope.matches("s3://b/impala/impala-2.rpm")
    assert not scope.matches("s3://b/impala/aaa.rpm")  # before the start
    assert not scope.matches("s3://b/impala/install.rpm")  # the end is exclusive
    assert not scope.matches("s3://b/impala/zzz.rpm")
    assert not scope.matches("s3://b/impala2/impala-2.rpm")  # a sibling folder is not under the root
    assert not scope.matches("s3://b/impala/")  # the root "directory" key itself
    assert Range("s3://b").matches("s3://b/x") and not Range("s3://b").matches("s3://c/x")


def test_a_bad_regex_or_location_is_a_listing_error_naming_it() -> None:
    with pytest.raises(ListingError, match="s3_path_regex_filter"):
        Range.resolve("s3://b/x", {"s3_path_regex_filter": "(unclosed"}, NOW)
    with pytest.raises(ListingError, match="not an s3:// path"):
        Range.resolve("/local/path", {}, NOW)


def test_listing_after_the_key_before_includes_the_key() -> None:
    for key in ["impala/impala", "a", "x/y0", "k/z"]:
        assert key[:-1] <= _before(key) < key  # below the key, above everything sorting before its parent


def test_chunks_bound_keys_and_bytes() -> None:
    prefix = "s3://b/root/"
    many = [f"{prefix}{i:06d}" for i in range(2500)]
    assert [len(c) for c in chunks(prefix, many)] == [MAX_KEYS_PER_EVENT, MAX_KEYS_PER_EVENT, 500]
    long = [f"{prefix}{'k' * 1000}{i:04d}" for i in range(200)]
    sized = list(chunks(prefix, long))
    assert sum(len(c) for c in sized) == 200
    assert all(sum(len(s) + 4 for s in c) <= MAX_SUFFIX_BYTES for c in sized) and len(sized) > 1
    assert [prefix + s for c in sized for s in c] == long


def test_common_prefix_cuts_back_to_a_folder() -> None:
    assert common_prefix(["s3://b/x/part-1", "s3://b/x/part-2"]) == "s3://b/x/"
    assert common_prefix(["s3://b/x/a", "s3://b/y/a"]) == "s3://b/"
    assert common_prefix([]) == ""


def test_notifications_raw_and_in_sns_envelopes() -> None:
    record = {"eventName": "ObjectCreated:CompleteMultipartUpload",
              "s3": {"bucket": {"name": "b"}, "object": {"key": "dir/a+b%3D1.csv", "size": 12}}}
    raw = json.dumps({"Records": [record, {**record, "eventName": "ObjectRemoved:Delete"}]})
    assert parse_notification(raw) == [("s3://b/dir/a b=1.csv", 12)]
    sns = json.dumps({"Type": "Notification", "Subject": "Amazon S3 Notification", "Message": raw})
    assert parse_notification(sns) == [("s3://b/dir/a b=1.csv", 12)]
    assert parse_notification(json.dumps({"Event": "s3:TestEvent"})) == []
    with pytest.raises(ValueError):
        parse_notification("[1, 2]")
