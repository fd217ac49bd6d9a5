"""The dataset guess's rules (reference §5.2): the ``s3_path`` parameter, compression by content, bytes to
lines, and the DatasetData put together from the inferred row format and columns
(services/domain/dataset_inference.py). The S3 side, the listing walk and the ranged GET, is
services/adapters/s3_sample.py; the choices behind the rules are in docs/decisions.md ("Dataset guess").
"""

from __future__ import annotations

import bz2
import codecs
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.domain.dataset_inference import Column, Guess, merged_type
from services.domain.errors import BadRequest, DartError

MAX_OBJECT_BYTES = 4 * 1024 * 1024  # bytes fetched from S3 (a ranged GET), compressed or not
DEFAULT_MAX_LINES = 100
MAX_MAX_LINES = 10_000
MAX_TEXT_BYTES = 16 * 1024 * 1024  # bytes decompressed: bounds a decompression bomb
IDENTIFIER_MAX = 127  # Redshift's identifier limit; also the schema's limit on key-list items
NAME_MAX = 50  # the dataset name pattern's limit


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
from services.domain.schemas import DATASET_SCHEMA
from services.domain.schemas.validate import default_and_validate

# Control bytes no text file has: \x01-\x03 are Hive's delimiters, \t \n \v \f \r and ESC are text.
BINARY = re.compile(rb"[\x00\x04-\x08\x0e-\x1a\x1c-\x1f]")
SNAPPY_FRAME = b"\xff\x06\x00\x00sNaPpY"
BZ2_MAGIC = re.compile(rb"^BZh[1-9](1AY&SY|\x17rE8P\x90)", re.DOTALL)


S3_PATH = re.compile(r"^s3://(?P<bucket>[^/]*)(?:/(?P<prefix>.*))?$", re.DOTALL)
BUCKET = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,253}[a-zA-Z0-9]$")


class NothingToGuess(DartError):
    """No data object under the prefix (or no bucket): a 404."""

    status = 404


class S3Unavailable(DartError):
    """S3 did not answer (connection, timeout, its own 5xx) after boto3's retries: a 503."""

    status = 503


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



def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


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
