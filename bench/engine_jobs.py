"""One measured job of bench.engine_bench, run in a process of its own (as dart runs an engine: one action per
process), so its peak RSS is the job's alone.

    .venv/bin/python -m bench.engine_jobs '<job as JSON>'

An engine job calls the engine's HANDLER (engines/<name>/engine.py) with an ActionContext built as check-out
would return it and a stand-in for the few dart calls a handler makes (the dataset read, progress reports, a
datastore patch): the engine's own code, without dart around it. A baseline job does the same work with the
bare tool (psycopg COPY, DuckDB read_csv, boto3's transfer manager). The clock runs around the work only (not
the interpreter's start or imports). The last stdout line is ``JOB_RESULT {...}``: seconds, what was moved,
this process's CPU seconds and its peak RSS (VmHWM).
"""

from __future__ import annotations

import json
import resource
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from engines.data.datasets import Dataset
from engines.sdk import ActionContext

ACL = "bucket-owner-full-control"


class Dart:
    """The dart calls an engine handler makes, answered locally: the dataset envelope, and no-op reports."""

    def __init__(self, entities: dict[str, Any]) -> None:
        self.entities = entities

    def get(self, path: str, params: Any = None) -> Any:
        return self.entities[path]

    def subscription_elements(self, action_id: str) -> list[dict[str, Any]]:
        return []

    def report_progress(self, action_id: str, progress: float | None = None, extra_data: Any = None) -> None:
        return None

    def patch_datastore(self, datastore_id: str, **fields: Any) -> dict[str, Any]:
        return {}


def _context(action_type: str, args: dict[str, Any], engine: str, datastore_args: dict[str, Any]) -> ActionContext:
    action = {"id": uuid.uuid4().hex[:12], "data": {"action_type_name": action_type, "args": args}}
    store = {"id": "bench-store", "data": {"engine_name": engine, "args": datastore_args}}
    return ActionContext({"id": "bench-engine", "data": {}}, action, store)


def _pg_store(job: dict[str, Any]) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(job["database_url"])
    return {"host": info.get("host", "127.0.0.1"), "port": int(info.get("port") or 5432),
            "database": info["dbname"], "user": info.get("user", "postgres"), "password": "unused-with-trust"}


def _peak_rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# -- engine jobs -----------------------------------------------------------------------------------------

def pg_load(job: dict[str, Any]) -> dict[str, Any]:
    from engines.postgresql.engine import HANDLER

    client = Dart({"/dataset/bench": {"id": "bench", "data": job["dataset"]}})
    context = _context("load_dataset", {"dataset_id": "bench", "target_table_name": job["table"]},
                       "postgresql_engine", _pg_store(job))
    return _timed(lambda: HANDLER(context, client), rows=job["rows"])  # type: ignore[arg-type]


def pg_unload(job: dict[str, Any]) -> dict[str, Any]:
    from engines.postgresql.engine import HANDLER

    args = {"source_sql_statement": f"SELECT * FROM {job['table']}", "destination_s3_path": job["to"],
            "delimiter": ",", "gzip": job.get("gzip", True)}
    context = _context("copy_to_s3", args, "postgresql_engine", _pg_store(job))
    return _timed(lambda: HANDLER(context, Dart({})), rows=job["rows"])  # type: ignore[arg-type]


def duck_load(job: dict[str, Any]) -> dict[str, Any]:
    from engines.duckdb.engine import HANDLER

    client = Dart({"/dataset/bench": {"id": "bench", "data": job["dataset"]}})
    context = _context("load_dataset", {"dataset_id": "bench", "target_table_name": job["table"]},
                       "duckdb_engine", {"path": job["duckdb_path"]})
    return _timed(lambda: HANDLER(context, client), rows=job["rows"])  # type: ignore[arg-type]


def s3_copy(job: dict[str, Any]) -> dict[str, Any]:
    from engines.s3.engine import HANDLER

    context = _context("copy", {"from_path": job["from"], "to_path": job["to"], "recursive": job["recursive"]},
                       "s3_engine", {})
    return _timed(lambda: HANDLER(context, Dart({})), objects=job["objects"])  # type: ignore[arg-type]


# -- baselines -------------------------------------------------------------------------------------------

def pg_copy_in(job: dict[str, Any]) -> dict[str, Any]:
    """The limit of a load: COPY FROM STDIN of the uncompressed local file, 1 MiB writes."""
    import psycopg

    def work() -> None:
        with psycopg.connect(job["database_url"]) as conn, open(job["file"], "rb") as source:
            conn.execute(f"CREATE TABLE {job['table']} ({_definitions(job)})")
            with conn.cursor().copy(f"COPY {job['table']} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                while block := source.read(1 << 20):
                    copy.write(block)

    return _timed(work, rows=job["rows"])


def pg_copy_out(job: dict[str, Any]) -> dict[str, Any]:
    """The limit of an unload: COPY TO STDOUT (CSV) into a local file."""
    import psycopg

    def work() -> None:
        statement = f"COPY (SELECT * FROM {job['table']}) TO STDOUT WITH (FORMAT csv)"
        with psycopg.connect(job["database_url"]) as conn, open(job["file"], "wb") as sink, \
                conn.cursor().copy(statement) as copy:
            sink.writelines(copy)

    return _timed(work, rows=job["rows"])


def duck_read_csv(job: dict[str, Any]) -> dict[str, Any]:
    """DuckDB's own read_csv of the uncompressed local file into the same typed table."""
    import duckdb

    dataset = Dataset.from_api({"data": job["dataset"]})
    types = ", ".join(f"'{c.name}': '{c.sql_type()}'" for c in dataset.columns)

    def work() -> None:
        with duckdb.connect(job["duckdb_path"]) as conn:
            conn.execute(f"CREATE TABLE {job['table']} ({_definitions(job)})")
            conn.execute(f"INSERT INTO {job['table']} SELECT * FROM read_csv(?, header = true, "
                         f"columns = {{{types}}})", [job["file"]])

    return _timed(work, rows=job["rows"])


def tm_copy(job: dict[str, Any]) -> dict[str, Any]:
    """boto3's transfer manager, the engine's concurrency (8 copies, 10 pooled connections): lists like the
    engine, then ``copy`` each object (HEAD, then CopyObject or multipart UploadPartCopy above 8 MiB)."""
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    from engines.data import s3 as s3_hook
    from engines.s3.engine import PARALLEL_COPIES
    from services.domain.s3_range import split_s3

    def work() -> None:
        s3 = s3_hook.client(max_pool_connections=PARALLEL_COPIES + 2)
        bucket, prefix = split_s3(job["from"])
        to_bucket, to_prefix = split_s3(job["to"])
        keys = [o["Key"] for o in s3_hook.list_prefix(s3, job["from"])] if job["recursive"] else [prefix]
        with create_transfer_manager(s3, TransferConfig(max_concurrency=PARALLEL_COPIES)) as manager:
            futures = [manager.copy({"Bucket": bucket, "Key": key}, to_bucket, to_prefix + key[len(prefix):]
                                    if job["recursive"] else to_prefix, extra_args={"ACL": ACL}) for key in keys]
            for future in futures:
                future.result()

    return _timed(work, objects=job["objects"])


def _definitions(job: dict[str, Any]) -> str:
    return ", ".join(c.sql_definition() for c in Dataset.from_api({"data": job["dataset"]}).columns)


def _timed(work: Callable[[], Any], **moved: Any) -> dict[str, Any]:
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    work()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "cpu": after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime,
            "peak_rss_kib": _peak_rss_kib(), **moved}


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "pg_load": pg_load, "pg_unload": pg_unload, "duck_load": duck_load, "s3_copy": s3_copy,
    "pg_copy_in": pg_copy_in, "pg_copy_out": pg_copy_out, "duck_read_csv": duck_read_csv, "tm_copy": tm_copy,
}


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    result = JOBS[job["kind"]](job)
    print("JOB_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
