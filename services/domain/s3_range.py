"""Which S3 keys belong to a subscription (reference §9.1, §9.2), and listing them one page at a time.

A subscription's range is resolved once, when its generation starts: the dataset's location is the root, and
the date tokens ``{YEAR}`` ... ``{SECOND}`` in the start prefix, end prefix and regex are replaced by that
moment's UTC values. The resolved range is recorded in the log (``SubscriptionGenerationStarted``), so the
listing, a resumed listing and every later S3 notification test keys against the same values.

Rules, all on full ``s3://bucket/key`` paths:
- a path belongs to the root when it starts with ``<location>/`` (``s3://b/impala`` does not hold
  ``s3://b/impala2/x``); the root "directory" key itself is skipped;
- ``start`` is inclusive and ``end`` exclusive, compared as strings; a start prefix that matches no key
  starts the listing at the keys after it (the fix of the original's PR #136), never at the root's start;
- the regex is applied with ``re.search``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TOKENS = ("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND")
MAX_SUFFIX_BYTES = 48 * 1024  # an element event's key text stays well under 64 KiB (design.md §3)
MAX_KEYS_PER_EVENT = 1000


class ListingError(ValueError):
    """The subscription's range cannot be listed (bad location or regex); the message says why."""


def substitute_tokens(value: str | None, now: datetime) -> str | None:
    if value is None:
        return None
    parts = {"YEAR": f"{now.year:04d}", "MONTH": f"{now.month:02d}", "DAY": f"{now.day:02d}",
             "HOUR": f"{now.hour:02d}", "MINUTE": f"{now.minute:02d}", "SECOND": f"{now.second:02d}"}
    for token in TOKENS:
        value = value.replace("{" + token + "}", parts[token])
    return value


def split_s3(path: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not path.startswith("s3://"):
        raise ListingError(f"{path!r} is not an s3:// path")
    bucket, _, key = path[5:].partition("/")
    if not bucket:
        raise ListingError(f"{path!r} names no bucket")
    return bucket, key


@dataclass(frozen=True)
class Range:
    """A subscription's resolved range: what it lists, and what a notification must match."""

    root: str  # the dataset's location, without a trailing '/'
    start: str | None = None
    end: str | None = None
    regex: str | None = None

    @classmethod
    def resolve(cls, location: str, subscription: dict[str, Any], now: datetime) -> Range:
        found = cls(location.rstrip("/"),
                    substitute_tokens(subscription.get("s3_path_start_prefix_inclusive"), now),
                    substitute_tokens(subscription.get("s3_path_end_prefix_exclusive"), now),
                    substitute_tokens(subscription.get("s3_path_regex_filter"), now))
        found.check()
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Range:
        return cls(data["root"], data.get("start"), data.get("end"), data.get("regex"))

    def as_dict(self) -> dict[str, Any]:
        return {"root": self.root, "start": self.start, "end": self.end, "regex": self.regex}

    def check(self) -> None:
        split_s3(self.root)
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ListingError(f"s3_path_regex_filter {self.regex!r}: {exc}") from exc

    @property
    def prefix(self) -> str:
        """What every element path starts with; element events hold paths as suffixes of it."""
        return self.root + "/"

    def matches(self, path: str) -> bool:
        if not path.startswith(self.prefix) or path == self.prefix:
            return False
        if self.start is not None and path < self.start:
            return False
        if self.end is not None and path >= self.end:
            return False
        return self.regex is None or re.search(self.regex, path) is not None


@dataclass(frozen=True)
class Page:
    """One list call's worth: the matching (path, size) pairs, the last key S3 returned (where the next page
    starts), and whether more keys may follow."""

    elements: list[tuple[str, int]]
    listed_through: str | None
    more: bool


def _before(key: str) -> str:
    """Practically the greatest key below ``key``, so listing after it starts at ``key`` itself (StartAfter is
    exclusive) without walking the keys of the folder before it: ``logs/25`` -> ``logs/24\U0010ffff``. UTF-8
    byte order is code point order, which S3 sorts by."""
    if not key:
        return ""
    last = ord(key[-1]) - 1
    if last < 0:
        return key[:-1]
    if 0xD800 <= last <= 0xDFFF:  # a surrogate is no character: step below the block
        last = 0xD7FF
    return key[:-1] + chr(last) + "\U0010ffff"


def list_page(client: Any, scope: Range, after: str | None, page_size: int = 1000) -> Page:
    """One ``list_objects_v2`` call of the range, continuing after the s3 path ``after`` (None: from the
    start). Stops early, with ``more`` False, at the first key at or past the end prefix."""
    bucket, root_key = split_s3(scope.prefix)
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": root_key, "MaxKeys": page_size}
    if after is not None:
        request["StartAfter"] = split_s3(after)[1]
    elif scope.start is not None and scope.start > scope.prefix:
        start_bucket, start_key = split_s3(scope.start)
        if start_bucket == bucket:
            request["StartAfter"] = _before(start_key)
    response = client.list_objects_v2(**request)
    found: list[tuple[str, int]] = []
    last: str | None = after
    for item in response.get("Contents") or []:
        path = f"s3://{bucket}/{item['Key']}"
        if scope.end is not None and path >= scope.end:
            return Page(found, last, False)
        last = path
        if scope.matches(path):
            found.append((path, int(item.get("Size") or 0)))
    return Page(found, last, bool(response.get("IsTruncated")))


def pages(client: Any, scope: Range, after: str | None, page_size: int = 1000) -> Iterator[Page]:
    while True:
        page = list_page(client, scope, after, page_size)
        yield page
        if not page.more:
            return
        after = page.listed_through


def chunks(prefix: str, paths: list[str]) -> Iterator[list[str]]:
    """``paths`` (all under ``prefix``) as lists of suffixes, each at most MAX_KEYS_PER_EVENT keys and
    MAX_SUFFIX_BYTES of text: one element event each."""
    chunk: list[str] = []
    size = 0
    for path in paths:
        suffix = path[len(prefix):]
        cost = len(suffix.encode()) + 4
        if chunk and (len(chunk) >= MAX_KEYS_PER_EVENT or size + cost > MAX_SUFFIX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(suffix)
        size += cost
    if chunk:
        yield chunk
