"""Fixtures for the engines' tests: one moto server (S3 over loopback, the real wire protocol) for the session,
a fresh bucket per test, and small dataset files written to it in any format and compression; for an end-to-end
module, a `dart up` running the module's ``ENGINES`` (engine name: its ``python -m`` module) against that server."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bench.harness.api_client import Api
from bench.harness.moto import AWS_ENV, moto_server
from bench.harness.stacks import RunningDart
from tests.engines.e2e_support import dart_up, registered


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def dart(request: pytest.FixtureRequest, moto_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    """`dart up` (SQLite) with the module's ENGINES as local engine processes, against the session's moto."""
    with dart_up(tmp_path_factory, moto_url, request.module.ENGINES) as running:
        yield running


@pytest.fixture(scope="module")
def api(request: pytest.FixtureRequest, dart: RunningDart) -> Api:
    """``dart``'s API with the module's ENGINES registered by their own ``register`` commands."""
    return registered(dart, *request.module.ENGINES.values())


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment an engine gets: credentials, region and the moto endpoint (in this process too)."""
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": moto_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def compress(data: bytes, compression: str) -> bytes:
    if compression == "GZIP":
        return gzip.compress(data)
    if compression == "BZ2":
        return bz2.compress(data)
    return data


def encode_rows(rows: list[list[Any]], names: list[str], fmt: str) -> bytes:
    """Rows as a CSV (``,`` delimited, ``"`` quoted, one header row), JSON lines, or Parquet file."""
    if fmt == "CSV":
        lines = [",".join(names)] + [",".join("" if v is None else _csv(v) for v in row) for row in rows]
        return ("\n".join(lines) + "\n").encode()
    if fmt == "JSON":
        return "".join(json.dumps(dict(zip(names, row))) + "\n" for row in rows).encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({n: [row[i] for row in rows] for i, n in enumerate(names)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def _csv(value: Any) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def dataset_for(location: str, fmt: str, compression: str, columns: list[dict[str, Any]],
                **fields: Any) -> dict[str, Any]:
    """A dataset's data (reference §3.2) for files written by ``encode_rows``."""
    if fmt == "CSV":
        data_format = {"file_format": "TEXTFILE", "row_format": "DELIMITED", "delimited_by": ",",
                       "quoted_by": '"', "num_header_rows": 1}
    elif fmt == "JSON":
        data_format = {"file_format": "TEXTFILE", "row_format": "JSON", "num_header_rows": 0}
    else:
        data_format = {"file_format": "PARQUET", "row_format": "NONE", "num_header_rows": 0}
    data = {"name": f"ds_{uuid.uuid4().hex[:8]}", "table_name": "events", "location": location,
            "load_type": "INSERT", "data_format": data_format, "columns": columns,
            "compression": "NONE" if fmt == "PARQUET" else compression}
    data.update(fields)
    return data
