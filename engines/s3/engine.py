"""The s3_engine's actions, each a short function over the S3 hook (engines.data.s3): ``copy`` (server-side,
multipart above 5 GB, bounded parallelism, bucket-owner-full-control; a re-run overwrites the same keys) and
``data_check``."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from engines.data import s3 as s3_hook
from engines.runner import dispatch
from engines.s3.definition import NAME
from engines.sdk import ActionContext, ActionFailure, DartClient
from services.domain.s3_range import split_s3

log = logging.getLogger("dart.engine.s3")

MULTIPART_THRESHOLD = 5 * 1024 ** 3  # CopyObject's limit: bigger objects are copied part by part
PART_SIZE = 256 * 1024 ** 2
PARALLEL_COPIES = 8


def copy_object(s3: Any, source: str, target: str, size: int, threshold: int = MULTIPART_THRESHOLD,
                part_size: int = PART_SIZE) -> None:
    """One server-side copy, the bucket owner getting full control; multipart (UploadPartCopy) above
    ``threshold``: the bytes never pass through the engine."""
    from_bucket, from_key = split_s3(source)
    to_bucket, to_key = split_s3(target)
    try:
        if size <= threshold:
            s3.copy_object(Bucket=to_bucket, Key=to_key, CopySource={"Bucket": from_bucket, "Key": from_key},
                           ACL=s3_hook.ACL)
        else:
            s3.copy({"Bucket": from_bucket, "Key": from_key}, to_bucket, to_key, ExtraArgs={"ACL": s3_hook.ACL},
                    Config=TransferConfig(multipart_threshold=threshold, multipart_chunksize=part_size,
                                          max_concurrency=4))
    except ClientError as exc:
        raise s3_hook.S3Error(f"cannot copy {source} to {target}: {s3_hook._reason(exc)}") from exc


def copy_paths(s3: Any, from_path: str, to_path: str, recursive: bool, workers: int = PARALLEL_COPIES,
               threshold: int = MULTIPART_THRESHOLD, part_size: int = PART_SIZE) -> tuple[int, int]:
    """Copy one object, or every object under ``from_path`` to the same relative key under ``to_path`` (the
    original's rule: the key with the source prefix replaced by the target prefix). Returns (objects, bytes)."""
    if recursive:
        from_bucket, from_key = split_s3(from_path)
        pairs = [(f"s3://{from_bucket}/{obj['Key']}", to_path + obj["Key"][len(from_key):], int(obj["Size"]))
                 for obj in s3_hook.list_prefix(s3, from_path) if obj["Key"] != from_key]
    else:
        bucket, key = split_s3(from_path)
        try:
            size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            raise s3_hook.S3Error(f"cannot read {from_path}: {s3_hook._reason(exc)}") from exc
        pairs = [(from_path, to_path, size)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # list() re-raises the first failure; the others still finish (S3 copies cannot be interrupted).
        list(pool.map(lambda p: copy_object(s3, p[0], p[1], p[2], threshold, part_size), pairs))
    return len(pairs), sum(p[2] for p in pairs)


def copy(context: ActionContext, client: DartClient) -> None:
    args = context.action_args
    now = s3_hook.token_time()
    from_path = str(s3_hook.tokens(args["from_path"], now))
    to_path = str(s3_hook.tokens(args["to_path"], now))
    recursive = args.get("recursive") is not False
    s3 = s3_hook.client(max_pool_connections=PARALLEL_COPIES + 2)
    objects, size = copy_paths(s3, from_path, to_path, recursive)
    log.info("copied %d object(s), %d bytes, from %s to %s", objects, size, from_path, to_path)
    client.report_progress(context.action_id, 1.0, {"objects_copied": objects, "bytes_copied": size})


def find_match(s3: Any, args: dict[str, Any], now: datetime) -> str | None:
    """The first key under the prefix that passes the check (regex from the path's start, minimum size,
    modified since now + offset when asked), or None."""
    offset = args.get("date_offset_in_seconds") or 0
    prefix = str(s3_hook.tokens(args["s3_path_prefix"], now, offset))
    regex = s3_hook.tokens(args.get("s3_path_regex"), now, offset)
    s3_hook.check_regex(regex)
    min_size = args.get("min_file_size_in_bytes") or 0
    since = now + timedelta(seconds=offset) if args.get("s3_file_last_modified") else None
    bucket, _ = split_s3(prefix)
    for obj in s3_hook.list_prefix(s3, prefix):
        path = f"s3://{bucket}/{obj['Key']}"
        if regex and not re.match(regex, path):
            continue
        if min_size and int(obj["Size"]) < min_size:
            continue
        if since is not None and obj["LastModified"].replace(tzinfo=None) < since:
            continue
        return path
    return None


def data_check(context: ActionContext, client: DartClient) -> None:
    args = context.action_args
    found = find_match(s3_hook.client(), args, s3_hook.token_time())
    if found is None:
        raise ActionFailure(f"Data check failed: no object under {args['s3_path_prefix']} matches "
                            f"(regex {args.get('s3_path_regex')!r}, at least "
                            f"{args.get('min_file_size_in_bytes') or 0} bytes)")
    log.info("data check passed: %s", found)
    client.report_progress(context.action_id, 1.0, {"matched": found})


HANDLER = dispatch(NAME, {"copy": copy, "data_check": data_check})
