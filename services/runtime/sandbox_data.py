"""The sandbox's sample data: a day of synthetic web server logs, one gzip file per hour, tab-delimited, under
``s3://<bucket>/weblogs/YYYY/MM/DD/HH.tsv.gz``. Deterministic for a day and a line count (the same seed), so a
restarted sandbox writes the same objects again and a re-run finds the same rows."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

BUCKET = "dart-sandbox"
LOGS_PREFIX = "weblogs/"
DEFAULT_LINES = 300_000

PATHS = ("/", "/search", "/product/{n}", "/cart", "/checkout", "/api/v1/items/{n}", "/static/app.js",
         "/static/style.css", "/login", "/account")
METHODS = (("GET", 90), ("POST", 8), ("PUT", 1), ("DELETE", 1))
STATUSES = ((200, 820), (304, 60), (301, 20), (404, 60), (500, 25), (503, 15))
AGENTS = ("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "Mozilla/5.0 (Macintosh) Safari/18.4",
          "Mozilla/5.0 (Windows NT 10.0) Chrome/156.0", "curl/8.14.1", "Googlebot/2.1")

# The dataset describing the files (reference §3.2): what `dart up --sandbox` registers.
COLUMNS: list[dict[str, Any]] = [
    {"name": "ts", "data_type": "TIMESTAMP"},
    {"name": "ip", "data_type": "VARCHAR", "length": 15},
    {"name": "method", "data_type": "VARCHAR", "length": 8},
    {"name": "path", "data_type": "VARCHAR", "length": 200},
    {"name": "status", "data_type": "INT"},
    {"name": "bytes", "data_type": "BIGINT"},
    {"name": "duration_ms", "data_type": "INT"},
    {"name": "user_agent", "data_type": "VARCHAR", "length": 200},
]


def _weighted(choices: tuple[tuple[Any, int], ...]) -> tuple[list[Any], list[int]]:
    return [c for c, _ in choices], [w for _, w in choices]


def hour_lines(day: date, hour: int, count: int) -> Iterator[str]:
    """``count`` log lines of one hour, in time order."""
    rng = random.Random(f"{day.isoformat()}-{hour}")
    methods, method_weights = _weighted(METHODS)
    statuses, status_weights = _weighted(STATUSES)
    start = datetime(day.year, day.month, day.day, hour)
    seconds = sorted(rng.randrange(3600) for _ in range(count))
    for offset in seconds:
        status = rng.choices(statuses, status_weights)[0]
        path = rng.choice(PATHS).replace("{n}", str(rng.randrange(1, 5000)))
        size = 0 if status == 304 else rng.randrange(200, 120_000)
        duration = rng.randrange(2, 40) if status < 500 else rng.randrange(500, 5000)
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        ts = (start + timedelta(seconds=offset)).strftime("%Y-%m-%d %H:%M:%S")
        yield "\t".join((ts, ip, rng.choices(methods, method_weights)[0], path, str(status), str(size),
                         str(duration), rng.choice(AGENTS)))


def day_prefix(day: date) -> str:
    return f"{LOGS_PREFIX}{day:%Y/%m/%d}/"


def hourly_files(day: date, lines: int) -> Iterator[tuple[str, bytes, int]]:
    """(key, gzip bytes, line count) for each hour of ``day``; ``lines`` spread over the 24 hours."""
    for hour in range(24):
        count = lines // 24 + (1 if hour < lines % 24 else 0)
        text = "".join(line + "\n" for line in hour_lines(day, hour, count))
        yield f"{day_prefix(day)}{hour:02d}.tsv.gz", gzip.compress(text.encode(), compresslevel=6), count


def seed_bucket(s3: Any, day: date, lines: int = DEFAULT_LINES, bucket: str = BUCKET) -> int:
    """Create the bucket (if absent) and write ``day``'s files unless they are there already; the number of
    log lines the day holds."""
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    present = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=day_prefix(day)).get("Contents", [])}
    written = 0
    for key, body, count in hourly_files(day, lines):
        written += count
        if key not in present:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
    return written
