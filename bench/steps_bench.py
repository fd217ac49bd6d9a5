"""Steps and trigger -> engine code running, cold vs warm engines side by side (issue 16's benchmarks).

    .venv/bin/python -m bench.steps_bench [--steps 40] [--chains 3] [--runs 200] [--wiring embedded|amqp|sqs] [--quick]

Two darts run at once and the measurements alternate between them round by round, so both see the same
machine load. ``embedded``: two `dart up` (SQLite), one with cold engine starts (DART_LOCAL_ENGINES_WARM=0: a
new ``python -m engines.no_op`` per action), one with warm starts (a warm parent forks each action's engine).
``amqp`` and ``sqs``: two production stacks (PostgreSQL; RabbitMQ, or SQS on moto; every dart process on its
own), one launching an ECS task per action (moto and the test ECS agent, which starts ``python -m
engines.no_op`` as the task), one with DART_WARM_WORKER_ENGINES=no_op_engine and a `dart engine-worker
--engine no_op_engine`.

- **steps**: one workflow of ``--steps`` sequential no-op actions (sleep 0); a step is the previous action's
  check-in -> this action's check-out (its engine code running), from the log's own timestamps; the wall
  time is the instance's creation -> its WorkflowInstanceCompleted;
- **trigger -> first check-out**: POST do-manual-trigger (client clock, the same machine's) -> the action's
  ActionCheckedOut, one run at a time, ``--runs`` runs per mode.

The idle dart costs little (its followers poll every DART_POLL_INTERVAL, default 0.5 s as a user runs it).
Every number is printed with the load average when it was taken; the last line is ``BENCH_JSON``.
``--quick``: one 10-step chain and 10 trigger runs per mode (CI: that it still runs).
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
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.harness.api_client import Api
from bench.harness.stacks import EMBEDDED_SQLITE, PRODUCTION, PRODUCTION_AMQP, Production, running
from bench.run_bench import loadavg, log_events, pct, ts, wait
from engines.no_op.definition import NO_OP_ENGINE

MODES = ("cold", "warm")
PEERS = {  # published or measured here, for context (docs/benchmarks.md has the sources)
    "hatchet, 40 sequential python tasks": 1.22, "windmill, dedicated workers": 2.09, "temporal": 2.97,
}


def _datastore(api: Api) -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": f"steps_{time.time_ns()}", "engine_name": "no_op_engine",
                                            "state": "ACTIVE", "args": {"action_sleep_time_in_seconds": 0},
                                            "concurrency": 1}})


def _workflow(api: Api, actions: int) -> dict[str, Any]:
    store = _datastore(api)
    flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": f"w_{time.time_ns()}",
                                                                    "state": "ACTIVE"}})
    api.post(f"/workflow/{flow['id']}/action", [
        {"data": {"name": f"a{i}", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}
        for i in range(actions)])
    return flow


def _done(api: Api, instance_id: str) -> bool:
    return api.get(f"/workflow/instance/{instance_id}")["data"]["state"] in ("COMPLETED", "FAILED")


def chain(api: Api, steps: int) -> tuple[list[float], float]:
    """One workflow of ``steps`` sequential no-op actions: the per-step times (ms) and the wall time (s)."""
    flow = _workflow(api, steps)
    instance_id = api.request("POST", f"/workflow/{flow['id']}/do-manual-trigger")[1]["workflow_instance_id"]
    wait(lambda: _done(api, instance_id), timeout=600)
    instance = api.get(f"/workflow/instance/{instance_id}")
    assert instance["data"]["state"] == "COMPLETED", instance
    actions = {a["id"]: a["data"] for a in api.get("/action", params={
        "filters": [f"workflow_instance_id = {instance_id}"], "limit": 10000})}
    order = sorted(actions, key=lambda a: actions[a]["order_idx"])
    wanted = {f"action-{a}" for a in order} | {f"workflow_instance-{instance_id}"}
    events = [e for e in log_events(api, ["ActionCheckedIn", "ActionCheckedOut", "WorkflowInstanceCreated",
                                          "WorkflowInstanceCompleted"]) if e["stream_id"] in wanted]
    at = {(e["type"], e["stream_id"].split("-", 1)[1]): ts(e) for e in events}
    per_step = [(at[("ActionCheckedOut", b)] - at[("ActionCheckedIn", a)]) * 1000 for a, b in itertools.pairwise(order)]
    wall = at[("WorkflowInstanceCompleted", instance_id)] - at[("WorkflowInstanceCreated", instance_id)]
    return per_step, wall


def trigger_to_checkout(api: Api, flow: dict[str, Any], runs: int) -> list[float]:
    """``runs`` manual triggers of a one-action workflow, one at a time: trigger -> check-out (ms)."""
    out = []
    for _ in range(runs):
        started = time.time()
        instance_id = api.request("POST", f"/workflow/{flow['id']}/do-manual-trigger")[1]["workflow_instance_id"]
        wait(lambda i=instance_id: _done(api, i))
        [action] = api.get("/action", params={"filters": [f"workflow_instance_id = {instance_id}"]})
        history = api.ok("GET", f"/action/{action['id']}/history")
        [checked_out] = [e for e in history if e["type"] == "ActionCheckedOut"]
        out.append((ts(checked_out) - started) * 1000)
    return out


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 1), "p99": round(pct(values, 99), 1),
            "max": round(max(values), 1), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--chains", type=int, default=3, help="chains per mode, alternating cold and warm")
    parser.add_argument("--runs", type=int, default=200, help="trigger -> check-out runs per mode")
    parser.add_argument("--poll-interval", default="0.5", help="DART_POLL_INTERVAL of both darts")
    parser.add_argument("--wiring", choices=["embedded", "amqp", "sqs"], default="embedded")
    parser.add_argument("--server-url", default=os.environ.get("DART_BENCH_DATABASE_URL",
                                                               "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="PostgreSQL server for the production wiring (a fresh database per stack)")
    parser.add_argument("--quick", action="store_true", help="one 10-step chain and 10 trigger runs per mode")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.chains, args.runs = 10, 1, 10
    with ExitStack() as stack:
        darts = {}
        for mode in MODES:
            home = Path(tempfile.mkdtemp(prefix=f"dart-steps-{mode}-"))
            env = {"DART_POLL_INTERVAL": args.poll_interval}
            if args.wiring == "embedded":
                env["DART_LOCAL_ENGINES_WARM"] = "1" if mode == "warm" else "0"
                darts[mode] = stack.enter_context(running(EMBEDDED_SQLITE, home, env=env))
                continue
            if mode == "warm":
                env["DART_WARM_WORKER_ENGINES"] = NO_OP_ENGINE["name"]
            wiring = PRODUCTION_AMQP if args.wiring == "amqp" else PRODUCTION
            production = stack.enter_context(running(wiring, home, env=env, server_url=args.server_url))
            assert isinstance(production, Production)
            if mode == "warm":
                production.roles["engine-worker"] = ("engine-worker", "--engine", NO_OP_ENGINE["name"])
                production.start("engine-worker")
                production.wait_ready("engine-worker")
            darts[mode] = production
        apis = {mode: dart.api() for mode, dart in darts.items()}
        for api in apis.values():
            if not api.get("/engine", params={"filters": [f"name = {NO_OP_ENGINE['name']}"]}):  # production
                api.post("/engine", {"data": NO_OP_ENGINE})
        return _measure(apis, args)


def _measure(apis: dict[str, Api], args: argparse.Namespace) -> int:
    steps: dict[str, list[float]] = {m: [] for m in MODES}
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    trig: dict[str, list[float]] = {m: [] for m in MODES}
    load = {"start": loadavg()}
    for mode in MODES:  # a first action each (the warm parent starts with it), not measured
        chain(apis[mode], 2)
    for round_ in range(args.chains):
        for mode in (MODES if round_ % 2 == 0 else MODES[::-1]):
            per_step, wall = chain(apis[mode], args.steps)
            steps[mode] += per_step
            walls[mode].append(wall)
    load["after steps"] = loadavg()
    flows = {mode: _workflow(apis[mode], 1) for mode in MODES}
    batch = 10
    for start in range(0, args.runs, batch):  # alternate in batches of 10 runs
        for mode in MODES:
            trig[mode] += trigger_to_checkout(apis[mode], flows[mode], min(batch, args.runs - start))
    load["after trigger runs"] = loadavg()
    wiring = {"embedded": "embedded (dart up, SQLite): cold process vs warm fork",
              "amqp": "production (PostgreSQL, RabbitMQ): ECS task (moto + test agent) vs warm engine worker",
              "sqs": "production (PostgreSQL, SQS on moto): ECS task (moto + test agent) vs warm engine worker",
              }[args.wiring]
    print(f"\ndart steps, {wiring}, same run, poll interval {args.poll_interval} s")
    print(f"{'measure':<52} {'cold p50':>9} {'cold p99':>9} {'warm p50':>9} {'warm p99':>9}")
    rows = [(f"step: check-in -> next check-out (ms), {args.steps}-step chain x{args.chains}", steps),
            ("trigger -> first check-out (ms)", trig)]
    for label, values in rows:
        cold, warm = _summary(values["cold"]), _summary(values["warm"])
        print(f"{label:<52} {cold['p50']:>9.1f} {cold['p99']:>9.1f} {warm['p50']:>9.1f} {warm['p99']:>9.1f}")
    for mode in MODES:
        print(f"{args.steps}-step workflow wall time, {mode}: " + ", ".join(f"{w:.2f} s" for w in walls[mode])
              + f" (median {statistics.median(walls[mode]):.2f} s)")
    print("load average (1/5/15 min): " + "; ".join(f"{k} {v}" for k, v in load.items()))
    result = {"wiring": wiring, "steps": args.steps, "chains": args.chains,
              "runs": args.runs, "poll_interval": args.poll_interval,
              "step_ms": {m: _summary(steps[m]) for m in MODES},
              "wall_s": {m: walls[m] for m in MODES},
              "trigger_to_checkout_ms": {m: _summary(trig[m]) for m in MODES},
              "loadavg": load, "peers_40_steps_s": PEERS}
    print("BENCH_JSON " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
