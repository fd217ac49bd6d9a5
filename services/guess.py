"""``GET /dataset/guess?s3_path=&max_lines=`` (reference §5.2): a DatasetData inferred from the first object
under an S3 prefix: compression, row format (JSON lines or delimited), delimiter, quoting, header, column
names and types, nullability. The choices behind the rules are in docs/decisions.md ("Dataset guess").

S3 is read with boto3 through ``DART_AWS_ENDPOINT_URL`` / ``DART_AWS_REGION``: one listing walk to the first
data object, then one ranged GET of at most ``MAX_OBJECT_BYTES`` that is read in chunks and closed as soon
as enough lines are in hand, so a huge object is never downloaded.

Everything between the bytes and the DatasetData is pure (``sample_lines``, ``infer``, ``build``) and is
unit-tested without S3.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import json
import math
import re
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.errors import BadRequest, DartError

DEFAULT_MAX_LINES = 100
MAX_MAX_LINES = 10_000
MAX_OBJECT_BYTES = 4 * 1024 * 1024  # bytes fetched from S3 (a ranged GET), compressed or not
MAX_TEXT_BYTES = 16 * 1024 * 1024  # bytes decompressed: bounds a decompression bomb
CHUNK_BYTES = 64 * 1024
MAX_KEYS_SCANNED = 10_000  # keys looked at for a data object before giving up
MAX_COLUMNS = 1600  # Redshift's limit on a table's columns
VARCHAR_FLOOR = 256  # Redshift's default VARCHAR width
VARCHAR_MAX = 65535  # Redshift's widest VARCHAR
IDENTIFIER_MAX = 127  # Redshift's identifier limit; also the schema's limit on key-list items
NAME_MAX = 50  # the dataset name pattern's limit

# Delimiters tried, most trusted first: when two split the sample equally well, the one less likely to
# occur inside a text value wins (commas are common in text, \x01 -- Hive's default -- never is).
DELIMITERS = ("\x01", "\t", "|", ";", ",")
NULL_MARKERS = ("\\N", "NULL", "null")  # besides the empty string

S3_PATH = re.compile(r"^s3://(?P<bucket>[^/]*)(?:/(?P<prefix>.*))?$", re.S)
BUCKET = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,253}[a-zA-Z0-9]$")
INTEGER = re.compile(r"^[+-]?\d+$")
LEADING_ZERO = re.compile(r"^[+-]?0\d")
DECIMAL = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][+-]?\d+)?$")
FLOAT_WORDS = {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)
SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

INT64 = 2**63
TYPED_KINDS = {"bool", "int", "decimal", "float", "date", "timestamp"}


class NothingToGuess(DartError):
    """No data object under the prefix (or no bucket): a 404."""

    status = 404


class S3Unavailable(DartError):
    """S3 did not answer (connection, timeout, its own 5xx) after boto3's retries: a 503."""

    status = 503


# ------------------------------------------------------------------------------------------ request input


def parse_s3_path(raw: str | None) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` -> (bucket, prefix); a 400 naming s3_path otherwise."""
    if raw is None or raw == "":
        raise BadRequest("s3_path: required, as s3://bucket/prefix")
    match = S3_PATH.match(raw)
    if match is None:
        raise BadRequest(f"s3_path: must be s3://bucket/prefix, not {_clip(raw)!r}")
    bucket, prefix = match["bucket"], match["prefix"] or ""
    if not BUCKET.match(bucket):
        raise BadRequest(f"s3_path: {_clip(bucket)!r} is not an S3 bucket name")
    if len(prefix.encode()) > 1024:
        raise BadRequest("s3_path: the key prefix is longer than S3's 1024 bytes")
    return bucket, prefix


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
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
            client = boto3.client("s3", region_name=key[1], endpoint_url=key[0] or None, config=config)
            _clients[key] = client
        return client


def _is_data_key(key: str, size: int, prefix: str) -> bool:
    """A key that holds data: not empty, not a "directory" marker, not a hidden file (Hive and Spark skip
    names starting with "_" or ".", such as _SUCCESS and .part-0.crc) unless the path names it exactly."""
    if size <= 0 or key.endswith("/") or key.endswith("_$folder$"):
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


def read_object(client: Any, bucket: str, key: str) -> Iterator[bytes]:
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

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (DartError, GeneratorExit)):
            return False
        from botocore.exceptions import (BotoCoreError, ClientError, ConnectionError as BotoConnectionError,
                                         NoCredentialsError, ParamValidationError, ReadTimeoutError)

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


# ----------------------------------------------------------------------------------- bytes to lines

# Signatures of what is not text. The first four are unmistakable; the others are also the first letters
# of some header lines ("ORCID,..."), so they count only when binary bytes follow.
MAGIC = (
    (b"\x28\xb5\x2f\xfd", "Zstandard-compressed", False),
    (b"\xfd7zXZ\x00", "xz-compressed", False),
    (b"\x89LZO", "LZO-compressed", False),
    (b"\xff\xfe", "UTF-16 text", False),
    (b"\xfe\xff", "UTF-16 text", False),
    (b"PK\x03\x04", "a zip archive", True),
    (b"PAR1", "a Parquet file", True),
    (b"ORC", "an ORC file", True),
    (b"Obj\x01", "an Avro container file", True),
    (b"SEQ", "a Hadoop SequenceFile", True),
    (b"RCF", "an RCFile", True),
)
# Control bytes no text file has: \x01-\x03 are Hive's delimiters, \t \n \v \f \r and ESC are text.
BINARY = re.compile(rb"[\x00\x04-\x08\x0e-\x1a\x1c-\x1f]")
SNAPPY_FRAME = b"\xff\x06\x00\x00sNaPpY"
BZ2_MAGIC = re.compile(rb"^BZh[1-9](1AY&SY|\x17rE8P\x90)", re.S)


def detect_compression(head: bytes, key: str) -> str:
    """NONE, GZIP or BZ2 from the first bytes (the content wins over the name); a 400 for what cannot be
    read as text: SNAPPY (named .snappy, or framed), other codecs and binary formats."""
    where = f"{key!r}"
    if head.startswith(b"\x1f\x8b"):
        return "GZIP"
    if BZ2_MAGIC.match(head):
        return "BZ2"
    if head.startswith(SNAPPY_FRAME) or key.lower().endswith((".snappy", ".sz")):
        raise BadRequest(
            f"s3_path: {where} is SNAPPY-compressed; Hadoop's snappy files carry no signature and dart has no "
            "snappy decoder, so they cannot be sampled: describe this dataset by hand (compression SNAPPY), "
            "or point the guess at an uncompressed, GZIP or BZ2 sample")
    for magic, what, needs_binary in MAGIC:
        if head.startswith(magic) and (not needs_binary or BINARY.search(head, 0, 1024)):
            raise BadRequest(f"s3_path: {where} looks like {what}; the guess reads text (plain, GZIP or BZ2) only")
    return "NONE"


class _Decoder:
    """Incremental decompression (several gzip members or bz2 streams in a row, as concatenated files have)
    and UTF-8 decoding, producing at most MAX_TEXT_BYTES."""

    def __init__(self, compression: str, key: str) -> None:
        self.compression = compression
        self.key = key
        self.codec: Any = self._new_codec()
        self.text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.budget = MAX_TEXT_BYTES
        self.members = 0  # gzip members or bz2 streams finished
        self.trailing = False  # undecodable bytes after a finished member: ignored, as gzip -d does
        self.first = True

    def _new_codec(self) -> Any:
        if self.compression == "GZIP":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.compression == "BZ2":
            return bz2.BZ2Decompressor()
        return None

    def _inflate(self, data: bytes) -> bytes:
        if self.codec is None and not self.trailing:
            data = data[: self.budget]
            self.budget -= len(data)
            return data
        out = []
        while data and self.budget > 0 and not self.trailing:
            try:
                piece = self.codec.decompress(data, self.budget)
            except (zlib.error, OSError, EOFError, ValueError) as exc:
                if self.members:
                    self.trailing = True
                    break
                raise BadRequest(f"s3_path: {self.key!r} starts like {self.compression} but does not decompress: "
                                 f"{exc}") from exc
            out.append(piece)
            self.budget -= len(piece)
            if not self.codec.eof:
                break
            self.members += 1
            data = self.codec.unused_data.lstrip(b"\x00")  # the next member or stream, if any
            self.codec = self._new_codec()
        return b"".join(out)

    def feed(self, data: bytes, final: bool = False) -> str:
        raw = self._inflate(data)
        if self.first and raw:
            self.first = False
            if raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise BadRequest(f"s3_path: {self.key!r} is UTF-16 text; the guess (and dart's engines) read UTF-8")
        text = self.text.decode(raw, final)
        if "\x00" in text:
            raise BadRequest(f"s3_path: {self.key!r} holds NUL bytes: a binary file, not text")
        return text

    @property
    def exhausted(self) -> bool:
        return self.budget <= 0


@dataclass
class Sample:
    lines: list[str]  # complete lines, each with its "\n" (the last may lack it at the end of the object)
    complete: bool  # the whole object was read
    byte_capped: bool  # the read stopped at the byte or character bound, not at max_lines


def sample_lines(chunks: Iterable[bytes], key: str, compression: str, want: int, size: int) -> Sample:
    """Up to ``want`` non-blank lines from the object's chunks (``size``: the object's length). A line cut by
    the byte bound is dropped."""
    decoder = _Decoder(compression, key)
    lines: list[str] = []
    pending = ""
    read = 0
    stopped = False
    for chunk in chunks:
        read += len(chunk)
        pending += decoder.feed(chunk)
        *done, pending = pending.split("\n")
        lines.extend(line + "\n" for line in done if line.strip())
        if len(lines) >= want:
            stopped = True
            break
        if decoder.exhausted:
            break
    complete = not stopped and read >= size and not decoder.exhausted
    if complete:
        pending += decoder.feed(b"", final=True)
        if pending.strip():
            lines.append(pending)
    return Sample(lines[:want], complete and len(lines) <= want, not stopped and not complete)


# ------------------------------------------------------------------------------------------- values


@dataclass
class Column:
    """What the sample says of one column."""

    key: str  # the header name, the JSON path's keys joined by ".", or "" (col_N)
    path: str | None = None
    kinds: set[str] = field(default_factory=set)
    values: int = 0  # rows with a non-null value
    max_bytes: int = 0  # the widest value's UTF-8 length
    max_digits: int = 0  # for integers beyond BIGINT

    def add(self, kind: str | None, text: str) -> None:
        if kind is None:
            return
        self.values += 1
        self.kinds.add(kind)
        self.max_bytes = max(self.max_bytes, len(text.encode()))
        if kind == "decimal":
            self.max_digits = max(self.max_digits, len(text.lstrip("+-")))


def text_kind(value: str) -> str | None:
    """The kind of one delimited value; None for a null (empty, \\N, NULL)."""
    v = value.strip()
    if v == "" or v in NULL_MARKERS:
        return None
    low = v.lower()
    if low in ("true", "false"):
        return "bool"
    if INTEGER.match(v):
        if LEADING_ZERO.match(v):
            return "string"  # a code such as a zip code: an integer type would lose its zeros
        n = int(v)
        if -INT64 <= n < INT64:
            return "int"
        return "decimal" if len(v.lstrip("+-")) <= 38 else "string"
    if DECIMAL.match(v) or low in FLOAT_WORDS:
        return "float"
    return string_kind(v)


def string_kind(v: str) -> str:
    """date, timestamp or string, for a text value."""
    m = DATE.match(v)
    if m:
        return "date" if _valid_date(m) else "string"
    m = TIMESTAMP.match(v)
    if m:
        hour, minute, second = int(m[4]), int(m[5]), int(m[6] or 0)
        return "timestamp" if _valid_date(m) and hour < 24 and minute < 60 and second <= 60 else "string"
    return "string"


def _valid_date(m: re.Match[str]) -> bool:
    try:
        date(int(m[1]), int(m[2]), int(m[3]))
        return True
    except ValueError:
        return False


def merged_type(col: Column) -> dict[str, Any]:
    """The column's data_type (and length, precision, scale) from the kinds of its values."""
    kinds = col.kinds
    if kinds == {"bool"}:
        return {"data_type": "BOOLEAN"}
    if kinds == {"int"}:
        return {"data_type": "BIGINT"}
    if kinds and kinds <= {"int", "decimal"}:
        return {"data_type": "NUMERIC", "precision": 38, "scale": 0}
    if kinds and kinds <= {"int", "decimal", "float"}:
        return {"data_type": "DOUBLE"}
    if kinds == {"date"}:
        return {"data_type": "DATE"}
    if kinds and kinds <= {"date", "timestamp"}:
        return {"data_type": "TIMESTAMP"}
    if col.max_bytes > VARCHAR_MAX:
        return {"data_type": "STRING"}
    return {"data_type": "VARCHAR", "length": min(VARCHAR_MAX, max(VARCHAR_FLOOR, _pow2(col.max_bytes)))}


def _pow2(n: int) -> int:
    return 1 if n <= 1 else 2 ** math.ceil(math.log2(n))


# ------------------------------------------------------------------------------------------ row formats


@dataclass
class Guess:
    row_format: str
    columns: list[Column]
    rows: int  # data rows sampled
    num_header_rows: int = 0
    delimited_by: str | None = None
    quoted_by: str | None = None
    escaped_by: str | None = None
    null_string: str | None = None


def infer(lines: list[str], key: str = "the object") -> Guess:
    """The row format and columns of the sampled lines."""
    if not lines:
        raise BadRequest(f"s3_path: {key!r} holds no lines to guess from")
    first = lines[0].strip()
    if first.startswith("{"):
        return infer_json(lines, key)
    if first == "[" or first.startswith(("[{", "[[", '["')):
        raise BadRequest(f"s3_path: {key!r} holds a JSON array; only JSON lines (one object a line) or delimited "
                         "text can be guessed")
    return infer_delimited(lines)


def infer_json(lines: list[str], key: str) -> Guess:
    columns: dict[str, Column] = {}
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError as exc:
            hint = " (a pretty-printed JSON document?)" if number == 1 else ""
            raise BadRequest(f"s3_path: {key!r} line {number} is not a JSON object{hint}: {exc}; only JSON lines "
                             "(one object a line) or delimited text can be guessed") from exc
        if not isinstance(row, dict):
            raise BadRequest(f"s3_path: {key!r} line {number} is JSON but not an object")
        _walk_json(row, [], columns)
        if len(columns) > MAX_COLUMNS:
            raise BadRequest(f"s3_path: {key!r} has more than {MAX_COLUMNS} distinct JSON paths")
    # A path seen both as a value and as an object holding others ({} in one line, {"a": 1} in another)
    # is described by its children.
    kept = [c for k, c in columns.items() if not any(other.startswith(k + "\x00") for other in columns)]
    return Guess("JSON", kept, len(lines))


def _walk_json(value: Any, keys: list[str], columns: dict[str, Column]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk_json(v, [*keys, str(k)], columns)
        return
    if not keys:
        return
    ident = "\x00".join(keys)
    col = columns.get(ident)
    if col is None:
        col = columns[ident] = Column("_".join(keys), _json_path(keys))
    if value is None or value == {}:
        return
    if isinstance(value, bool):
        col.add("bool", json.dumps(value))
    elif isinstance(value, int):
        col.add("int" if -INT64 <= value < INT64 else "decimal", str(value))
    elif isinstance(value, float):
        col.add("float", repr(value))
    elif isinstance(value, str):
        col.add(string_kind(value), value)
    else:  # an array: loaded as its JSON text
        col.add("string", json.dumps(value, ensure_ascii=False))


def _json_path(keys: list[str]) -> str:
    """The original's path: the keys joined by "." (its Redshift engine prepends "$."); a key that is no
    plain identifier is written ['key'] after the first."""
    out = keys[0]
    for k in keys[1:]:
        out += f".{k}" if SIMPLE_KEY.match(k) else "['" + k.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


def _parse(lines: list[str], delimiter: str, escape: str | None) -> list[list[str]]:
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, escapechar=escape,
                        strict=False)
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error:
        pass  # a quoted value still open where the sample ends: the rows before it stand
    return [r for r in rows if any(v.strip() for v in r)]


def choose_delimiter(lines: list[str]) -> str | None:
    """The candidate splitting most lines into the same number (≥ 2) of fields; near-ties go to the one less
    likely to occur inside text (DELIMITERS' order). None: a single column."""
    scored = []
    for rank, d in enumerate(DELIMITERS):
        if not any(d in line for line in lines):
            continue
        counts = [len(r) for r in _parse(lines, d, None)]
        if not counts:
            continue
        mode = max(set(counts), key=lambda c: (counts.count(c), c))
        if mode < 2:
            continue
        consistency = counts.count(mode) / len(counts)
        scored.append((consistency, rank, d))
    if not scored:
        return None
    best = max(s[0] for s in scored)
    return min((s for s in scored if s[0] >= best - 0.05), key=lambda s: s[1])[2]


def infer_delimited(lines: list[str]) -> Guess:
    delimiter = choose_delimiter(lines)
    escape = None
    if delimiter is None:
        # One column: any delimiter that never occurs in the sample keeps each line whole.
        delimiter = next((d for d in DELIMITERS if not any(d in line for line in lines)), "\x01")
    elif any(f"\\{delimiter}" in line or '\\"' in line for line in lines):
        escape = "\\"
    rows = _parse(lines, delimiter, escape)
    quote = re.compile(r'(^|' + re.escape(delimiter) + r')\s*"')
    quoted = any(quote.search(line) for line in lines)
    header = has_header(rows)
    names = rows[0] if header else []
    data = rows[1:] if header else rows
    width = max([len(names), *(len(r) for r in data)] or [0])
    if width > MAX_COLUMNS:
        raise BadRequest(f"s3_path: the sample splits into {width} columns, more than {MAX_COLUMNS}")
    columns = [Column(names[i] if i < len(names) else "") for i in range(width)]
    markers: dict[str, int] = {}
    for row in data:
        for i, value in enumerate(row):
            stripped = value.strip()
            if stripped in NULL_MARKERS:
                markers[stripped] = markers.get(stripped, 0) + 1
            columns[i].add(text_kind(value), value)
    null_string = max(markers, key=lambda m: markers[m]) if markers else None
    return Guess("DELIMITED", columns, len(data), 1 if header else 0, delimiter, '"' if quoted else None, escape,
                 null_string)


def has_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns. Where the other rows have a typed column (numbers, dates,
    booleans), the first row's value votes: a value of that type says data, another says header. Where every
    column is text, a constant-width column votes the same way by width. Without votes, the first row is a
    header when its values look like names (identifiers, none repeated below)."""
    if len(rows) < 2:
        return False
    first, rest = rows[0], rows[1:]
    cells = [c.strip() for c in first]
    named = [c for c in cells if c]
    if len(named) < len(cells) - 1 or len(set(named)) != len(named):
        return False  # names are present (one may be blank: an index column) and distinct
    if any(text_kind(c) not in ("string", None) for c in cells):
        return False  # a number, date or boolean is no column name
    header = data = 0
    for i, cell in enumerate(cells):
        values = [r[i] for r in rest if i < len(r) and text_kind(r[i]) is not None]
        if not values or not cell:
            continue
        if cell in (v.strip() for v in values):
            data += 1
            continue
        kinds = {text_kind(v) for v in values}
        if kinds & TYPED_KINDS and "string" not in kinds:
            header += 1  # the column is typed, and the first value (a string) is not of its type
        elif len(values) >= 2 and len({len(v.strip()) for v in values}) == 1:
            if len(cell) == len(values[0].strip()):
                data += 1
            else:
                header += 1
    if header or data:
        return header > data
    return all(SIMPLE_KEY.match(c) for c in named)


# ------------------------------------------------------------------------------------------ the guess


def identifier(raw: str, fallback: str) -> str:
    """A lower-case ``^[a-z0-9_]+$`` name for a column or table; a leading digit gets a "_"."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", raw.strip())  # orderDate -> order_date
    name = re.sub(r"[^a-z0-9_]+", "_", snake.lower()).strip("_")
    name = re.sub(r"_+", "_", name)[:IDENTIFIER_MAX].rstrip("_")
    if not name:
        return fallback
    return f"_{name}"[:IDENTIFIER_MAX] if name[0].isdigit() else name


def _column_names(columns: list[Column]) -> list[str]:
    names: list[str] = []
    taken: set[str] = set()
    for i, col in enumerate(columns, 1):
        name = identifier(col.key, f"col_{i}")
        base, n = name, 2
        while name in taken:
            suffix = f"_{n}"
            name = base[:IDENTIFIER_MAX - len(suffix)] + suffix
            n += 1
        taken.add(name)
        names.append(name)
    return names


def dataset_name(bucket: str, key: str) -> str:
    """From the object's directory: its deepest folder that is no partition (``dt=…``) and no date or number
    (``2019/01/31``); else the bucket."""
    folders = key.split("/")[:-1]
    for folder in reversed(folders):
        if "=" in folder or re.fullmatch(r"[\d_.:-]*", folder):
            continue
        name = identifier(folder, "")
        if name:
            return name
    return identifier(bucket, "dataset")


def build(bucket: str, key: str, compression: str, guess: Guess, sample: Sample, user_id: str) -> dict[str, Any]:
    """The DatasetData, checked against the dataset schema (with its defaults filled in)."""
    from services.schemas import DATASET_SCHEMA
    from services.schemas.validate import default_and_validate

    if not guess.columns:
        raise BadRequest(f"s3_path: no column can be found in s3://{bucket}/{key}")
    columns = []
    for name, col in zip(_column_names(guess.columns), guess.columns):
        column: dict[str, Any] = {"name": name, **merged_type(col), "is_nullable": col.values < guess.rows}
        if guess.row_format == "JSON":
            column["path"] = col.path
        columns.append(column)
    folder = key.rsplit("/", 1)[0] if "/" in key else ""
    name = dataset_name(bucket, key)
    lines = len(sample.lines)
    how = "the whole object" if sample.complete else f"its first {lines} lines"
    if sample.byte_capped:
        how += f" (the read stops at {MAX_OBJECT_BYTES // (1024 * 1024)} MiB)"
    data = {
        "name": name[:NAME_MAX].rstrip("_") or "dataset",
        "table_name": name,
        "location": f"s3://{bucket}/{folder}".rstrip("/"),
        "load_type": "INSERT",
        "compression": compression,
        "data_format": {
            "file_format": "TEXTFILE",
            "row_format": guess.row_format,
            "num_header_rows": guess.num_header_rows,
            "delimited_by": guess.delimited_by,
            "quoted_by": guess.quoted_by,
            "escaped_by": guess.escaped_by,
            "null_string": guess.null_string,
        },
        "columns": columns,
        "description": f"guessed from s3://{bucket}/{key}, {how}",
        "user_id": user_id,
    }
    return default_and_validate(data, DATASET_SCHEMA)


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


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
