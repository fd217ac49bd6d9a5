"""The dataset guess's S3 side: the ``s3_path`` parameter, the boto3 client, the listing walk to the first
data object, the ranged GET read in chunks, and boto3's failures mapped to the API's (the rules are services/domain/dataset_guess.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from services.domain.dataset_guess import (
    DEFAULT_MAX_LINES,
    MAX_MAX_LINES,
    MAX_OBJECT_BYTES,
    NothingToGuess,
    S3Unavailable,
    build,
    detect_compression,
    parse_s3_path,
    sample_lines,
)
from services.domain.dataset_inference import infer
from services.domain.errors import BadRequest, DartError

CHUNK_BYTES = 64 * 1024
MAX_KEYS_SCANNED = 10_000  # keys looked at for a data object before giving up

# ------------------------------------------------------------------------------------------------- S3


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def s3_client(endpoint_url: str, region: str) -> Any:
    """One boto3 S3 client per (endpoint, region) and process (clients are thread-safe; building one
    resolves credentials, which may cost a metadata-service round trip)."""
    key = (endpoint_url or "", region or "us-east-1")
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
            client = boto3.client("s3", region_name=key[1], endpoint_url=key[0] or None, config=config)
            _clients[key] = client
        return client


def _is_data_key(key: str, size: int, prefix: str) -> bool:
    """A key that holds data: not empty, not a "directory" marker, not a hidden file (Hive and Spark skip
    names starting with "_" or ".", such as _SUCCESS and .part-0.crc) unless the path names it exactly."""
    if size <= 0 or key.endswith(("/", "_$folder$")):
        return False
    if key == prefix:
        return True
    base = key.rsplit("/", 1)[-1]
    return not base.startswith(("_", "."))


def first_object(client: Any, bucket: str, prefix: str) -> tuple[str, int]:
    """The first data object under the prefix in S3's (lexicographic) order: (key, size)."""
    scanned = 0
    token: str | None = None
    with _S3Errors(bucket, prefix):
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
            if token:
                kwargs["ContinuationToken"] = token
            page = client.list_objects_v2(**kwargs)
            for entry in page.get("Contents") or []:
                if _is_data_key(entry["Key"], int(entry.get("Size") or 0), prefix):
                    return entry["Key"], int(entry["Size"])
                scanned += 1
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
            if scanned >= MAX_KEYS_SCANNED:
                raise NothingToGuess(
                    f"s3_path: none of the first {scanned} keys under s3://{bucket}/{prefix} is a data object "
                    "(all empty, directory markers or hidden _/. files); give a narrower prefix")
    what = f"only empty objects, directory markers or hidden _/. files ({scanned} keys)" if scanned else "no object"
    raise NothingToGuess(f"s3_path: nothing to guess from: s3://{bucket}/{prefix} has {what}")


def read_object(client: Any, bucket: str, key: str) -> Generator[bytes]:
    """The object's first MAX_OBJECT_BYTES, in chunks; the stream is closed when the caller stops."""
    with _S3Errors(bucket, key):
        response = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{MAX_OBJECT_BYTES - 1}")
    body = response["Body"]
    try:
        with _S3Errors(bucket, key):
            yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()


class _S3Errors:
    """Maps boto3's failures to the API's: the path's own problems are 4xx, S3 being away is a 503."""

    def __init__(self, bucket: str, key: str) -> None:
        self.where = f"s3://{bucket}/{key}"
        self.bucket = bucket

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None or isinstance(exc, (DartError, GeneratorExit)):
            return False
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code == "NoSuchBucket":
                raise NothingToGuess(f"s3_path: there is no bucket {self.bucket!r}") from exc
            if code in ("NoSuchKey", "InvalidRange"):
                raise NothingToGuess(f"s3_path: {self.where} went away while it was read") from exc
            if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout", "ServiceUnavailable"):
                raise S3Unavailable(f"S3 did not answer for {self.where}: {code or status}; retry later") from exc
            if code in ("AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                        "ExpiredToken", "InvalidToken", "AccountProblem"):
                raise BadRequest(f"s3_path: dart may not read {self.where} ({code})") from exc
            raise BadRequest(f"s3_path: S3 refused {self.where}: {code or status} {error.get('Message') or ''}"
                             .rstrip()) from exc
        if isinstance(exc, NoCredentialsError):
            raise BadRequest(f"s3_path: dart has no AWS credentials to read {self.where}") from exc
        if isinstance(exc, ParamValidationError):
            raise BadRequest(f"s3_path: S3 cannot take {_clip(self.where)!r}: {exc}") from exc
        if isinstance(exc, (BotoConnectionError, ReadTimeoutError, BotoCoreError)):
            raise S3Unavailable(f"S3 did not answer for {self.where}: {exc}; retry later") from exc
        return False


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def guess_dataset(client: Any, s3_path: str | None, max_lines: int = DEFAULT_MAX_LINES,
                  user_id: str = "anonymous") -> dict[str, Any]:
    """The guess for ``s3_path`` (``s3://bucket/prefix``) from at most ``max_lines`` data lines."""
    if not 1 <= max_lines <= MAX_MAX_LINES:
        raise BadRequest(f"max_lines: must be between 1 and {MAX_MAX_LINES}, not {max_lines}")
    bucket, prefix = parse_s3_path(s3_path)
    key, size = first_object(client, bucket, prefix)
    chunks = read_object(client, bucket, key)
    try:
        head = next(chunks, b"")
        compression = detect_compression(head, key)
        # One more line than asked for: the first may be a header.
        sample = sample_lines(_prepend(head, chunks), key, compression, max_lines + 1, size)
    finally:
        chunks.close()
    guess = infer(sample.lines, key)
    if guess.num_header_rows == 0 and len(sample.lines) > max_lines:
        sample.lines = sample.lines[:max_lines]
        sample.complete = False
        guess = infer(sample.lines, key)
    return build(bucket, key, compression, guess, sample, user_id)


def dataset_guesser(endpoint_url: str, region: str) -> Callable[[str | None, int, str], dict[str, Any]]:
    """The guess as the API takes it, ``(s3_path, max_lines, user_id) -> DatasetData``: built by the
    composition root, so the API imports no boto3. The client is made on the first guess, not before."""

    def guess(s3_path: str | None, max_lines: int, user_id: str) -> dict[str, Any]:
        return guess_dataset(s3_client(endpoint_url, region), s3_path, max_lines, user_id)

    return guess


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest
