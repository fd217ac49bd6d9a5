"""The REST API benchmark's report: the machine, the table of runs with dart/bare ratios, the verdicts
against the issue's bar, the query plans and the profiles."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from bench.api_load import CLIENTS, Plan, Run

TARGET_RATIO = 0.5  # the bar: filtered lists at >= 50% of the bare endpoint's rate ...
TARGET_P99_MS = 100.0  # ... and p99 under 100 ms at 8 concurrent clients


def machine_info(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])

    def show(name: str) -> str:
        row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
        return str(row[0]) if row else ""

    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgres": show("server_version"),
        "postgres_settings": {n: show(n) for n in ("shared_buffers", "work_mem", "jit",
                                                   "max_parallel_workers_per_gather")},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "wrk": wrk.split("\n")[0].strip(),
    }


def table(runs: list[Run]) -> str:
    lines = [
        ("| scenario | indexes | target | req/s | p50 ms | p99 ms | errors | app CPU ms/req | DB CPU ms/req "
         "| CPU-bound req/s | other load % | dart/bare req/s | dart/bare CPU-bound |"),
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r.scenario, r.variant, r.target): r for r in runs}
    for r in runs:
        bare = by.get((r.scenario, r.variant, "bare")) if r.target == "dart" else None
        ratio = f"{r.rps / bare.rps:.2f}" if bare and bare.rps else ""
        cpu_ratio = f"{r.cpu_capacity / bare.cpu_capacity:.2f}" if bare and bare.cpu_capacity else ""
        lines.append(
            f"| {r.scenario} | {'+ expression indexes' if r.variant else 'as shipped'} | {r.target} | "
            f"{r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {r.app_cpu_ms_per_req:.2f} | "
            f"{r.db_cpu_ms_per_req:.2f} | {r.cpu_capacity:,.0f} | {r.other_cpu_pct:.0f} | {ratio} | "
            f"{cpu_ratio} |"
        )
    return "\n".join(lines)


def verdicts(runs: list[Run]) -> list[dict[str, Any]]:
    by = {(r.scenario, r.variant, r.target): r for r in runs}
    out = []
    for (scenario, variant, target), r in by.items():
        if target != "dart" or scenario not in ("a", "b"):
            continue
        bare = by[(scenario, variant, "bare")]
        ratio = r.rps / bare.rps if bare.rps else 0.0
        out.append({"scenario": scenario, "variant": variant or "as shipped", "ratio": round(ratio, 2),
                    "ratio_ok": ratio >= TARGET_RATIO, "p99_ms": r.p99_ms,
                    "p99_ok": r.p99_ms < TARGET_P99_MS, "bare_p99_ms": bare.p99_ms})
    return out


def print_report(plan: Plan, args: argparse.Namespace, runs: list[Run], plans: dict[str, Any],
                 profiles: dict[str, Any]) -> None:
    print()
    print(f"REST API benchmark: {plan.workflows:,} workflows / {plan.actions:,} actions; {CLIENTS} clients "
          f"(wrk); {args.workers} gunicorn workers x {args.threads} threads; {plan.rounds} x "
          f"{plan.seconds:g} s per scenario and target")
    print(table(runs))
    print()
    for v in verdicts(runs):
        print(f"  target ({v['scenario']}, {v['variant']}): dart/bare {v['ratio']:.2f} "
              f"({'meets' if v['ratio_ok'] else 'MISSES'} >= {TARGET_RATIO:.0%}); p99 {v['p99_ms']:.1f} ms "
              f"({'meets' if v['p99_ok'] else 'MISSES'} < {TARGET_P99_MS:.0f} ms; "
              f"bare {v['bare_p99_ms']:.1f})")
    print()
    print("server time of one request's list queries (EXPLAIN ANALYZE, best of 3, ms) and plan:")
    for variant, found in plans.items():
        for name, value in found.items():
            print(f"  {variant:10} {name:13} {value['ms']:8.2f}  {value['plan']}")
    for name, summary in profiles.items():
        print(f"\npy-spy --gil, {name}: share of the workers' Python CPU ({summary['busy_samples']} samples)")
        for label, share in summary["groups"]:
            print(f"  {share:5.1f}%  {label}")
        print("  steps (inclusive):")
        for label, share in summary["steps"]:
            print(f"  {share:5.1f}%  {label}")

