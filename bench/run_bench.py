"""How fast workflows move: check-in -> next action launched, manual trigger -> first launch, and a chain of
workflows, measured from the log's own timestamps on a running dart (bench/harness/stacks.py): `dart up` on
SQLite (embedded), or production — PostgreSQL, RabbitMQ (amqp) or SQS on moto (sqs) as the broker, engines as
ECS tasks on moto started by the test ECS agent, every dart process on its own.

    .venv/bin/python -m bench.run_bench [--runs 200] [--chain 100] [--wiring embedded|amqp|sqs] [--quick]

``--quick``: 10 runs and a 5-workflow chain, seconds on the embedded wiring (CI: that it still runs).

Each interval is the difference of two events' recorded_at in the log (one clock, the store's): what a
user waits for, without the engine process's own start-up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness.api_client import Api
from bench.harness.stacks import EMBEDDED_SQLITE, PRODUCTION, PRODUCTION_AMQP, running
from engines.no_op.definition import NO_OP_ENGINE

ANCHORS = {
    "airflow 3.3 (LocalExecutor, PostgreSQL)": {"trigger_to_start_p50_ms": 518, "task_to_next_p50_ms": 922,
                                                "dag_to_dag_p50_ms": 942},
    "airflow 3.3, scheduler idle sleep 0.1 s": {"trigger_to_start_p50_ms": 139, "task_to_next_p50_ms": 142,
                                                "dag_to_dag_p50_ms": 171},
    "temporal (published best)": {"task_to_next_p50_ms": 100},
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait(check: Any, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("benchmark run did not finish")


def log_events(api: Api, types: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        params = {"after": after, "limit": 10000, "type": ",".join(types)}
        status, page = api.request("GET", "/log", params=params)
        assert status == 200, page
        out += page["results"]
        if len(page["results"]) < 10000:
            return out
        after = page["next_after"]


def ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["recorded_at"]).timestamp()


def setup(api: Api, state: str = "ACTIVE") -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": f"bench_{time.time_ns()}", "engine_name": "no_op_engine",
                                            "state": state, "args": {"action_sleep_time_in_seconds": 0},
                                            "concurrency": 1}})


def checkin_to_next_launch(api: Api, runs: int) -> list[float]:
    store = setup(api)
    flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": f"chain_{time.time_ns()}",
                                                                    "state": "ACTIVE"}})
    api.post(f"/workflow/{flow['id']}/action", [
        {"data": {"name": f"a{i}", "action_type_name": "fake_action_that_succeeds",
                  "engine_name": "no_op_engine"}}
        for i in range(runs + 1)])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = wait(lambda: [i for i in api.get(f"/workflow/{flow['id']}/instance")
                               if i["data"]["state"] in ("COMPLETED", "FAILED")])
    actions = {a["id"]: a["data"] for a in api.get("/action", params={
        "filters": [f"workflow_instance_id = {instance['id']}"], "limit": 10000})}
    events = log_events(api, ["ActionCheckedIn", "ActionLaunched"])
    checked_in = {e["stream_id"][7:]: ts(e) for e in events if e["type"] == "ActionCheckedIn"}
    launched = {e["stream_id"][7:]: ts(e) for e in events if e["type"] == "ActionLaunched"}
    order = sorted(actions, key=lambda a: actions[a]["order_idx"])
    return [(launched[b] - checked_in[a]) * 1000 for a, b in itertools.pairwise(order)
            if a in checked_in and b in launched]


def trigger_to_first_launch(api: Api, runs: int) -> list[float]:
    store = setup(api)
    flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": f"trig_{time.time_ns()}",
                                                                    "state": "ACTIVE"}})
    api.post(f"/workflow/{flow['id']}/action", [
        {"data": {"name": "only", "action_type_name": "fake_action_that_succeeds",
                  "engine_name": "no_op_engine"}}])
    intervals = []
    for _ in range(runs):
        started = time.time()
        result = api.request("POST", f"/workflow/{flow['id']}/do-manual-trigger")[1]
        instance_id = result["workflow_instance_id"]
        wait(lambda i=instance_id: api.get(f"/workflow/instance/{i}")["data"]["state"]
             in ("COMPLETED", "FAILED"))
        [action] = api.get("/action", params={"filters": [f"workflow_instance_id = {instance_id}"]})
        history = api.ok("GET", f"/action/{action['id']}/history")
        launched = [e for e in history if e["type"] == "ActionLaunched"]
        intervals.append((ts(launched[0]) - started) * 1000)
    return intervals


def workflow_chain(api: Api, length: int) -> float:
    flows = []
    for i in range(length):
        store = setup(api, "TEMPLATE")
        flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": f"c{i}_{time.time_ns()}",
                                                                        "state": "ACTIVE"}})
        api.post(f"/workflow/{flow['id']}/action", [{"data": {
            "name": "a", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}])
        flows.append(flow)
    for upstream, downstream in itertools.pairwise(flows):
        api.post("/trigger", {"data": {"name": f"t_{time.time_ns()}",
                                       "trigger_type_name": "workflow_completion", "state": "ACTIVE",
                                       "args": {"completed_workflow_id": upstream["id"]},
                                       "workflow_ids": [downstream["id"]]}})
    started = time.monotonic()
    api.post(f"/workflow/{flows[0]['id']}/do-manual-trigger", None)
    wait(lambda: [i for i in api.get(f"/workflow/{flows[-1]['id']}/instance")
                  if i["data"]["state"] in ("COMPLETED", "FAILED")], timeout=1800)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="10 runs and a 5-workflow chain")
    parser.add_argument("--wiring", choices=["embedded", "amqp", "sqs"], default="embedded",
                        help="embedded: dart up on SQLite; amqp/sqs: production, separate processes on "
                             "PostgreSQL with RabbitMQ or SQS (moto) as the broker, engines as ECS tasks "
                             "(moto + test agent)")
    parser.add_argument("--server-url", default=os.environ.get("DART_BENCH_DATABASE_URL",
                                                               "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="PostgreSQL server for the production wirings (a fresh database is created)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.chain = 10, 5
    home = Path(tempfile.mkdtemp(prefix="dart-run-bench-"))
    wiring = {"embedded": EMBEDDED_SQLITE, "amqp": PRODUCTION_AMQP, "sqs": PRODUCTION}[args.wiring]
    # Every interval at its default (the embedded followers' 0.5 s poll), as a user would run dart.
    with running(wiring, home, env={"DART_POLL_INTERVAL": "0.5"}, server_url=args.server_url) as dart:
        return _measure(dart, args)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _measure(dart: Any, args: argparse.Namespace) -> int:
    api = dart.api()
    if not api.get("/engine", params={"filters": [f"name = {NO_OP_ENGINE['name']}"]}):  # dart up registers it
        api.post("/engine", {"data": NO_OP_ENGINE})
    load = {"start": loadavg()}
    checkin = checkin_to_next_launch(api, args.runs)
    load["after check-in runs"] = loadavg()
    trigger = trigger_to_first_launch(api, args.runs)
    load["after trigger runs"] = loadavg()
    chain = workflow_chain(api, args.chain)
    load["after chain"] = loadavg()
    wiring = {"embedded": "embedded (dart up, SQLite)",
              "amqp": "production (PostgreSQL, RabbitMQ, ECS on moto, separate processes)",
              "sqs": "production (PostgreSQL, SQS on moto, ECS on moto, separate processes)"}[args.wiring]
    rows = [
        ("check-in -> next action launched", checkin),
        ("manual trigger -> first launch", trigger),
    ]
    print(f"\ndart workflow latency, {wiring}, {args.runs} runs each")
    print(f"{'measure':<36} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, values in rows:
        print(f"{label:<36} {statistics.median(values):>8.1f} {pct(values, 99):>8.1f} {max(values):>8.1f}")
    print(f"{args.chain}-workflow chain (workflow_completion triggers): {chain:.1f} s "
          f"({chain / args.chain * 1000:.0f} ms per link, engine start-up included)")
    print("load average (1/5/15 min): " + "; ".join(f"{k} {v}" for k, v in load.items()))
    result = {
        "wiring": wiring, "runs": args.runs,
        "checkin_to_next_launch_ms": {"p50": statistics.median(checkin), "p99": pct(checkin, 99)},
        "trigger_to_first_launch_ms": {"p50": statistics.median(trigger), "p99": pct(trigger, 99)},
        "chain": {"workflows": args.chain, "seconds": chain},
        "loadavg": load,
        "anchors": ANCHORS,
    }
    print("BENCH_JSON " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
