"""The dynamodb_engine's load_dataset against a bare boto3 ``Table.batch_writer()`` loop over the same rows
(issue 13's benchmark), measured in the same run against the same moto server, engine and baseline
alternating, each in a process of its own (as dart runs an engine: one action per process).

    .venv/bin/python -m bench.dynamodb_bench [--rows 100000] [--rounds 3] [--quick]

Both read the same 10-column gzip CSV from moto's S3 and write one item a row into a fresh on-demand table:
the engine through its HANDLER (engines/dynamodb/engine.py) with an ActionContext as check-out returns it; the
baseline with what a user would write by hand: the object streamed through gzip and csv.DictReader, each row
typed (Decimal, bool, str; NULLs dropped) and put with ``batch_writer(overwrite_by_pkeys=["id"])``. The clock
runs around the work only. Every table is counted after its load (DescribeTable's ItemCount, which moto keeps
exact), so neither side can win by dropping items.

ratio = engine items/s / baseline items/s (goal >= 0.9). Every number is printed with the 1-minute load average
when it was taken; the last line is ``BENCH_JSON``. moto is the bottleneck of both sides (a Python server), so
the absolute numbers say little about AWS; the ratio says what the engine's own work costs.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

import boto3

from bench.harness.moto import AWS_ENV, moto_server

BUCKET = "dynamodb-bench"
COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "data_type": "BIGINT", "is_nullable": False}, {"name": "user_id", "data_type": "INT"},
    {"name": "name", "data_type": "VARCHAR", "length": 40},
    {"name": "amount", "data_type": "NUMERIC", "precision": 12, "scale": 2},
    {"name": "ratio", "data_type": "DOUBLE"}, {"name": "active", "data_type": "BOOLEAN"},
    {"name": "day", "data_type": "DATE"}, {"name": "ts", "data_type": "TIMESTAMP"},
    {"name": "country", "data_type": "VARCHAR", "length": 2}, {"name": "note", "data_type": "STRING"}]
COUNTRIES = ["US", "FR", "DE", "JP", "BR"]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def make_rows(rows: int) -> bytes:
    """``rows`` rows as a gzip CSV with a header: quoted text with commas, one NULL note in ten."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c["name"] for c in COLUMNS])
    for i in range(rows):
        writer.writerow([i, (i * 7919) % 100000, f"user_{i % 5000}", f"{(i % 100000) / 100 + 0.01:.2f}",
                         (i % 1000) / 7, "true" if i % 3 == 0 else "false", f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                         f"2026-01-01 {i % 24:02d}:{i % 60:02d}:{i % 60:02d}", COUNTRIES[i % 5],
                         "" if i % 10 == 0 else f'note, "quoted" {i}'])
    return gzip.compress(out.getvalue().encode(), 6)


def dataset(location: str) -> dict[str, Any]:
    return {"name": "bench_rows", "table_name": "bench_rows", "location": location, "load_type": "INSERT",
            "compression": "GZIP", "columns": COLUMNS, "distribution_keys": ["id"],
            "data_format": {"file_format": "TEXTFILE", "row_format": "DELIMITED", "delimited_by": ",",
                            "quoted_by": '"', "num_header_rows": 1}}


# -- the measured jobs, each in a process of its own -------------------------------------------------------

def engine_job(job: dict[str, Any]) -> int:
    from engines.dynamodb.engine import HANDLER
    from engines.sdk import ActionContext

    class Dart:
        """The dart calls the handler makes, answered locally: the dataset, and the reports (the last kept)."""

        def __init__(self) -> None:
            self.result: dict[str, Any] = {}

        def get(self, path: str, params: Any = None) -> Any:
            return {"id": "d1", "data": job["dataset"]}

        def report_progress(self, action_id: str, progress: float | None = None, extra_data: Any = None) -> None:
            if extra_data is not None:
                self.result = extra_data

    dart = Dart()
    action = {"id": uuid.uuid4().hex[:12], "data": {"action_type_name": "load_dataset", "args": {}}}
    store = {"id": "bench", "data": {"args": {"dataset_id": "d1", "target_table_name": job["table"]}}}
    HANDLER(ActionContext({"id": "e", "data": {}}, action, store), dart)  # type: ignore[arg-type]
    return int(dart.result["rows"])


def baseline_job(job: dict[str, Any]) -> int:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    table = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1").Table(job["table"])
    types = {c["name"]: c["data_type"] for c in COLUMNS}
    typed = {"BIGINT": Decimal, "INT": Decimal, "NUMERIC": Decimal, "DOUBLE": Decimal,
             "BOOLEAN": lambda v: v == "true"}
    body = s3.get_object(Bucket=BUCKET, Key=job["key"])["Body"]
    rows = 0
    with gzip.open(body, "rt", newline="") as text, table.batch_writer(overwrite_by_pkeys=["id"]) as batch:
        for row in csv.DictReader(text):
            batch.put_item(Item={k: typed.get(types[k], str)(v) for k, v in row.items() if v != ""})
            rows += 1
    return rows


def run_job(job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.dynamodb_bench", "--job", json.dumps(job)], env=env,
                          capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("JOB_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{job['kind']} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("JOB_RESULT "):])
    result["load"] = load()
    return result


def job_main(raw: str) -> int:
    job = json.loads(raw)
    cpu, started = time.process_time(), time.perf_counter()
    rows = (engine_job if job["kind"] == "engine" else baseline_job)(job)
    seconds = time.perf_counter() - started
    print("JOB_RESULT " + json.dumps({"kind": job["kind"], "rows": rows, "seconds": seconds,
                                      "cpu": time.process_time() - cpu}))
    return 0


# -- the driver --------------------------------------------------------------------------------------------

def measure(kind: str, dynamodb: Any, env: dict[str, str], key: str, rows: int) -> dict[str, Any]:
    table = f"bench_{uuid.uuid4().hex[:10]}"
    dynamodb.create_table(TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                          BillingMode="PAY_PER_REQUEST")
    job = {"kind": kind, "table": table, "key": key,
           "dataset": dataset(f"s3://{BUCKET}/{key.rsplit('/', 1)[0]}")}
    try:
        result = run_job(job, env)
        items = int(dynamodb.describe_table(TableName=table)["Table"]["ItemCount"])
    finally:
        dynamodb.delete_table(TableName=table)  # moto holds every table in memory
    if items != rows or result["rows"] != rows:
        raise RuntimeError(f"{kind} wrote {items:,} item(s) from {result['rows']:,} row(s), not {rows:,}")
    result["items_per_second"] = rows / result["seconds"]
    print(f"  {kind:8} {rows:,} items in {result['seconds']:6.2f} s = {result['items_per_second']:7,.0f} items/s  "
          f"cpu {result['cpu']:5.2f} s  load {result['load']}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 rows, 1 round (numbers not judged)")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        return job_main(args.job)
    if args.quick:
        args.rows, args.rounds = 10_000, 1
    started = time.time()
    with moto_server() as endpoint:
        env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL": endpoint}
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)
        key = f"rows-{args.rows}/part-000.csv.gz"
        body = make_rows(args.rows)
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        print(f"data: {args.rows:,} rows, {len(body) / 1e6:.1f} MB gzip CSV; load {load()}", file=sys.stderr)
        rounds = []
        for r in range(args.rounds):
            order = ["engine", "baseline"] if r % 2 == 0 else ["baseline", "engine"]
            measured: dict[str, Any] = {kind: measure(kind, dynamodb, env, key, args.rows) for kind in order}
            measured["ratio"] = measured["engine"]["items_per_second"] / measured["baseline"]["items_per_second"]
            rounds.append(measured)
            print(f"round {r + 1}: ratio {measured['ratio']:.2f}", file=sys.stderr)
    ratio = statistics.median(r["ratio"] for r in rounds)
    engine = statistics.median(r["engine"]["items_per_second"] for r in rounds)
    base = statistics.median(r["baseline"]["items_per_second"] for r in rounds)
    verdict = "quick" if args.quick else ("met" if ratio >= 0.9 else "MISSED")
    print(f"\ndynamodb load_dataset vs boto3 batch_writer, {args.rows:,} rows, {args.rounds} round(s): engine "
          f"{engine:,.0f} items/s, baseline {base:,.0f} items/s, ratio {ratio:.2f} (goal >= 0.9: {verdict}); "
          f"rounds " + " ".join(f"{r['ratio']:.2f}({r['engine']['load']})" for r in rounds)
          + f"; {time.time() - started:.0f} s; load now {os.getloadavg()}")
    print("BENCH_JSON " + json.dumps({"rows": args.rows, "rounds": rounds, "ratio_median": ratio,
                                      "engine_items_per_second": engine, "baseline_items_per_second": base}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
