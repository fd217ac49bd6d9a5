"""The data engines against the bare tools they drive (issue 12's benchmark), each pair measured in the same
minutes, engine and baseline alternating.

    .venv/bin/python -m bench.engine_bench [--rows 1000000] [--rss-rows 5000000] [--rounds 3] [--quick]

It measures the engines, not dart: every engine run calls the handler in engines/<name>/engine.py with an
ActionContext as check-out returns it and a local stand-in for the few dart calls a handler makes
(bench/engine_jobs.py), in a process of its own as dart would run it; its peak RSS is that process's VmHWM.
Real parts only: moto's S3 server on loopback, the machine's PostgreSQL (a fresh database, dropped after),
DuckDB in temporary files.

Pairs (ratio = baseline seconds / engine seconds, so 1.0 means as fast as the bare tool):

- postgresql load_dataset of an N-row, 10-column gzip CSV from S3 vs COPY FROM STDIN of the same rows from a
  local uncompressed file (goal >= 0.7);
- postgresql copy_to_s3 (gzip, its default) of that table vs COPY TO STDOUT into a local file (>= 0.7);
  copy_to_s3 without gzip is shown too;
- duckdb load_dataset vs DuckDB's read_csv of the local file (>= 0.7);
- s3 copy of 1,000 small objects, and of one big object, vs boto3's transfer manager at the engine's
  concurrency (>= 0.9);
- peak RSS of each engine's process at N and --rss-rows rows (flat: within 20 %).

Every number is printed with the 1-minute load average when it was taken; the last line is ``BENCH_JSON``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import duckdb

from bench.harness.moto import AWS_ENV, moto_server
from bench.harness.pg import temporary_database

BUCKET = "engine-bench"
COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "data_type": "BIGINT", "is_nullable": False}, {"name": "user_id", "data_type": "INT"},
    {"name": "name", "data_type": "VARCHAR", "length": 40}, {"name": "amount", "data_type": "NUMERIC",
                                                             "precision": 12, "scale": 2},
    {"name": "ratio", "data_type": "DOUBLE"}, {"name": "active", "data_type": "BOOLEAN"},
    {"name": "day", "data_type": "DATE"}, {"name": "ts", "data_type": "TIMESTAMP"},
    {"name": "country", "data_type": "VARCHAR", "length": 2}, {"name": "note", "data_type": "STRING"}]
# The generator: text with commas and quotes (quoted fields), one NULL note in ten.
SELECT_ROWS = """SELECT i AS id, (i * 7919) % 100000 AS user_id, 'user_' || (i % 5000) AS name,
    round((i % 100000) / 100.0 + 0.01, 2) AS amount, (i % 1000) / 7.0 AS ratio, i % 3 = 0 AS active,
    DATE '2026-01-01' + (i % 365)::INTEGER AS day, TIMESTAMP '2026-01-01' + to_seconds(i) AS ts,
    ['US', 'FR', 'DE', 'JP', 'BR'][i % 5 + 1] AS country,
    CASE WHEN i % 10 = 0 THEN NULL ELSE 'note, "quoted" ' || i END AS note FROM range({rows}) t(i)"""


def load() -> float:
    return round(os.getloadavg()[0], 2)


def dataset(location: str) -> dict[str, Any]:
    return {"name": "bench_rows", "table_name": "bench_rows", "location": location, "load_type": "INSERT",
            "compression": "GZIP", "columns": COLUMNS,
            "data_format": {"file_format": "TEXTFILE", "row_format": "DELIMITED", "delimited_by": ",",
                            "quoted_by": '"', "num_header_rows": 1}}


def make_rows(folder: Path, rows: int, s3: Any) -> dict[str, Any]:
    """``rows`` rows as a local CSV (the baselines read it) and its gzip on S3 (the engines read that)."""
    plain = folder / f"rows-{rows}.csv"
    with duckdb.connect() as conn:
        conn.execute(f"COPY ({SELECT_ROWS.format(rows=rows)}) TO '{plain}' (HEADER, DELIMITER ',')")
    with open(f"{plain}.gz", "wb") as out:
        subprocess.run(["gzip", "-6", "-c", str(plain)], stdout=out, check=True)
    location = f"s3://{BUCKET}/rows-{rows}"
    s3.upload_file(f"{plain}.gz", BUCKET, f"rows-{rows}/part-000.csv.gz")
    return {"file": str(plain), "rows": rows, "dataset": dataset(location),
            "bytes": plain.stat().st_size, "gzip_bytes": Path(f"{plain}.gz").stat().st_size}


def run_job(job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """One job in its own process; the result with the load average when it ended. (The peak RSS is the
    child's own VmHWM: wait4's ru_maxrss also counts the forked parent's pages before exec.)"""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench.engine_jobs", json.dumps(job)], env=env,
                                stdout=out, stderr=subprocess.PIPE, text=True)
        stderr = proc.stderr.read() if proc.stderr else ""
        proc.wait()
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("JOB_RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{job['kind']} failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("JOB_RESULT "):])
    result.update(kind=job["kind"], load=load())
    return result


class Bench:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], s3: Any, database_url: str,
                 folder: Path) -> None:
        self.args, self.env, self.s3, self.database_url, self.folder = args, env, s3, database_url, folder
        self.results: dict[str, Any] = {}

    def job(self, kind: str, **fields: Any) -> dict[str, Any]:
        result = run_job({"kind": kind, "database_url": self.database_url, **fields}, self.env)
        print(f"  {kind:14} {result['seconds']:8.2f} s  cpu {result['cpu']:6.2f} s  "
              f"rss {result['peak_rss_kib'] / 1024:7.1f} MiB  load {result['load']}", file=sys.stderr)
        return result

    def table(self) -> str:
        return f"t_{uuid.uuid4().hex[:10]}"

    def drop(self, table: str) -> None:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")

    def pair(self, name: str, engine: Any, baseline: Any) -> None:
        """``rounds`` rounds of engine and baseline, alternating which goes first."""
        rounds = []
        for r in range(self.args.rounds):
            order = [("engine", engine), ("baseline", baseline)]
            measured = {who: run() for who, run in (order if r % 2 == 0 else order[::-1])}
            measured["ratio"] = measured["baseline"]["seconds"] / measured["engine"]["seconds"]
            rounds.append(measured)
            print(f"{name} round {r + 1}: ratio {measured['ratio']:.2f}", file=sys.stderr)
        self.results[name] = {"rounds": rounds, "ratio_median": statistics.median(r["ratio"] for r in rounds)}

    def postgresql(self, data: dict[str, Any]) -> None:
        rows = data["rows"]

        def engine_load() -> dict[str, Any]:
            table = self.table()
            try:
                return self.job("pg_load", dataset=data["dataset"], table=table, rows=rows)
            finally:
                self.drop(table)

        def copy_in() -> dict[str, Any]:
            table = self.table()
            try:
                return self.job("pg_copy_in", dataset=data["dataset"], table=table, rows=rows,
                                file=data["file"])
            finally:
                self.drop(table)

        self.pair("postgresql load_dataset / COPY FROM STDIN", engine_load, copy_in)
        source = self.table()
        self.job("pg_load", dataset=data["dataset"], table=source, rows=rows)
        out = self.folder / "copy-out.csv"
        for gzip in (True, False):
            self.pair(f"postgresql copy_to_s3 (gzip {str(gzip).lower()}) / COPY TO STDOUT",
                      lambda gzip=gzip: self.job(  # type: ignore[misc]
                          "pg_unload", table=source, rows=rows, gzip=gzip,
                          to=f"s3://{BUCKET}/unload/{uuid.uuid4().hex[:8]}/part"),
                      lambda: self.job("pg_copy_out", table=source, rows=rows, file=str(out)))
        out.unlink(missing_ok=True)
        self.drop(source)

    def duckdb(self, data: dict[str, Any]) -> None:
        def run(kind: str) -> dict[str, Any]:
            path = self.folder / f"{uuid.uuid4().hex[:8]}.duckdb"
            try:
                return self.job(kind, dataset=data["dataset"], table="bench_rows", rows=data["rows"],
                                file=data["file"], duckdb_path=str(path))
            finally:
                path.unlink(missing_ok=True)
                Path(f"{path}.wal").unlink(missing_ok=True)

        self.pair("duckdb load_dataset / read_csv", lambda: run("duck_load"), lambda: run("duck_read_csv"))

    def s3_copy(self, name: str, source: str, recursive: bool, objects: int) -> None:
        def run(kind: str) -> dict[str, Any]:
            to = f"s3://{BUCKET}/copy-{uuid.uuid4().hex[:8]}/"
            try:
                return self.job(kind, **{"from": source, "to": to + ("" if recursive else "object"),
                                         "recursive": recursive, "objects": objects})
            finally:
                self.empty(to)

        self.pair(name, lambda: run("s3_copy"), lambda: run("tm_copy"))

    def empty(self, prefix: str) -> None:
        keys = [{"Key": o["Key"]} for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix[len(f"s3://{BUCKET}/"):]) for o in page.get("Contents") or []]
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys[start:start + 1000]})

    def rss(self, sizes: list[dict[str, Any]]) -> None:
        """Each engine's peak RSS at each size (one run each)."""
        found: dict[str, dict[int, int]] = {"postgresql load_dataset": {}, "postgresql copy_to_s3": {},
                                            "duckdb load_dataset": {}}
        for data in sizes:
            rows, table = data["rows"], self.table()
            found["postgresql load_dataset"][rows] = self.job(
                "pg_load", dataset=data["dataset"], table=table, rows=rows)["peak_rss_kib"]
            found["postgresql copy_to_s3"][rows] = self.job(
                "pg_unload", table=table, rows=rows, to=f"s3://{BUCKET}/rss/{uuid.uuid4().hex[:8]}/part")[
                "peak_rss_kib"]
            self.drop(table)
            path = self.folder / f"rss-{rows}.duckdb"
            found["duckdb load_dataset"][rows] = self.job(
                "duck_load", dataset=data["dataset"], table="bench_rows", rows=rows,
                duckdb_path=str(path))["peak_rss_kib"]
            path.unlink(missing_ok=True)
        self.results["peak_rss_kib"] = found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rss-rows", type=int, default=5_000_000, help="the second size of the RSS check")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-objects", type=int, default=1000)
    parser.add_argument("--big-object-mib", type=int, default=1024)
    parser.add_argument("--only", default="postgresql,duckdb,s3,rss", help="comma-separated parts to run")
    parser.add_argument("--database-url", default=os.environ.get(
        "DART_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--quick", action="store_true", help="a few seconds: 20,000 rows, 1 round, small S3")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.rss_rows, args.rounds, args.small_objects, args.big_object_mib = 20_000, 40_000, 1, 50, 16
    parts = set(args.only.split(","))
    started = time.time()
    with moto_server() as endpoint, temporary_database(args.database_url) as database_url, \
            tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL": endpoint}
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)
        folder = Path(tmp)
        bench = Bench(args, env, s3, database_url, folder)
        data = make_rows(folder, args.rows, s3)
        print(f"data: {args.rows:,} rows, {data['bytes'] / 1e6:.1f} MB CSV, {data['gzip_bytes'] / 1e6:.1f} MB gzip",
              file=sys.stderr)
        if "postgresql" in parts:
            bench.postgresql(data)
        if "duckdb" in parts:
            bench.duckdb(data)
        if "s3" in parts:
            body = b"x" * 2048
            for i in range(args.small_objects):
                s3.put_object(Bucket=BUCKET, Key=f"small/part-{i:05d}", Body=body)
            bench.s3_copy(f"s3 copy {args.small_objects:,} small objects / transfer manager", f"s3://{BUCKET}/small/",
                     True, args.small_objects)
            big = folder / "big"
            with open(big, "wb") as out:
                block = os.urandom(1 << 20)
                out.writelines(block for _ in range(args.big_object_mib))
            s3.upload_file(str(big), BUCKET, "big/object")
            big.unlink()
            bench.s3_copy(f"s3 copy one {args.big_object_mib:,} MiB object / transfer manager", f"s3://{BUCKET}/big/object",
                     False, 1)
            s3.delete_object(Bucket=BUCKET, Key="big/object")
        if "rss" in parts:
            sizes = [data] + ([make_rows(folder, args.rss_rows, s3)] if args.rss_rows != args.rows else [])
            bench.rss(sizes)
    report(bench.results, args, data, time.time() - started)
    return 0


def report(results: dict[str, Any], args: argparse.Namespace, data: dict[str, Any], elapsed: float) -> None:
    goals = {"postgresql load": 0.7, "postgresql copy_to_s3 (gzip true)": 0.7, "duckdb": 0.7, "s3": 0.9}
    print(f"\n{'pair':62} {'engine s':>9} {'base s':>8} {'ratio':>6} goal  rounds (load)")
    for name, found in results.items():
        if name == "peak_rss_kib":
            continue
        goal = next((g for prefix, g in goals.items() if name.startswith(prefix)), None)
        rounds = found["rounds"]
        engine = statistics.median(r["engine"]["seconds"] for r in rounds)
        base = statistics.median(r["baseline"]["seconds"] for r in rounds)
        detail = " ".join(f"{r['ratio']:.2f}({r['engine']['load']})" for r in rounds)
        verdict = "" if goal is None else ("met" if found["ratio_median"] >= goal else "MISSED")
        if args.quick:
            verdict = "quick"  # fixed costs (a boto3 client, a connection) outweigh 20,000 rows: not judged
        print(f"{name:62} {engine:9.2f} {base:8.2f} {found['ratio_median']:6.2f} {goal or '-':<4} {verdict:6} "
              f"{detail}")
    rss = results.get("peak_rss_kib")
    if rss:
        print("\npeak RSS (MiB) by rows: " + "; ".join(
            f"{name}: " + ", ".join(f"{rows:,} -> {kib / 1024:.0f}" for rows, kib in by.items())
            + f" (x{max(by.values()) / min(by.values()):.2f})" for name, by in rss.items()))
    print(f"\n{args.rows:,} rows ({data['bytes'] / 1e6:.0f} MB CSV, {data['gzip_bytes'] / 1e6:.0f} MB gzip); "
          f"{elapsed:.0f} s; load now {os.getloadavg()}")
    print("BENCH_JSON " + json.dumps({"results": results, "rows": args.rows, "rss_rows": args.rss_rows,
                                      "commit": _commit(), "elapsed_seconds": elapsed}))


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
