"""Throughput: many single-action workflow runs triggered as fast as the API takes them; runs completed per
second, sustained, on embedded SQLite and on PostgreSQL; every run completed exactly once, checked from the
log. With ``--count-statements``: the SQL statements and appends one single-action run costs, trigger ->
COMPLETED (issue 16, item 5).

    .venv/bin/python -m bench.throughput_bench [--runs 2000] [--database sqlite|postgres|both] [--quick]
                                               [--count-statements]

What runs: dart's own wiring of ``dart up`` in this process (services/runtime/composition.py: the store with
its inline read models, the API served by waitress over HTTP, the orchestrator and launcher following the
log), with one difference: an action's engine is not a new process but a thread of a pool that speaks the
engine protocol to the API over HTTP exactly as the no-op engine does (check out, check in SUCCESS, with the
action's launch token). That measures dart (API, decisions, store) without the engine start-up that warm
engines (issue 16 items 1-2) address; the numbers say nothing about engine start.

Load: ``--workflows`` workflows (default 100), each on its own ACTIVE datastore; a workflow on an ACTIVE
datastore runs one instance at a time, so up to 100 runs are in flight; ``--clients`` threads trigger a workflow as soon as one of
its slots is free (a watcher following the log hands a slot back when a run of it completes), so the API is
not flooded with triggers it must refuse.
Sustained rate: completions per second between the 10th and the 90th percentile completion (the log's own
timestamps), beside the overall rate (first trigger to last completion).

The machine is shared: the 1-minute load average is printed beside every number; compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import pg
from bench.harness.api_client import Api
from bench.statement_count import StatementCounter

KEY, SECRET = "BENCHADMINKEY", "bench-admin-secret"
PG_SERVER = os.environ.get("DART_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CONCURRENCY = 10  # the schemas' maximum for a datastore
# A workflow on an ACTIVE datastore runs one instance at a time (services/commands/kinds.py): in flight at
# most one run per workflow.
RUNS_PER_WORKFLOW_AT_ONCE = 1


def load() -> float:
    return round(os.getloadavg()[0], 2)


@dataclass
class Stack:
    api: Api
    store: Any
    stop: Any


@contextmanager
def in_process_dart(database_url: str, home: Path, engine_threads: int) -> Iterator[Stack]:
    """dart up's wiring in this process, engines as threads (see the module docstring)."""
    from events.subscription import CatchUpSubscription
    from services.commands.auth import first_start_admin_key
    from services.commands.context import Orchestration
    from services.commands.entities import EntityService
    from services.commands.launcher import Launcher
    from services.commands.orchestrator import Orchestrator
    from services.runtime.builtin_engines import register_builtin_engines
    from services.runtime.composition import api_app, build
    from services.runtime.settings import load_settings
    from services.runtime.up import http_server

    with socket.socket() as probe:  # a free port (the settings refuse 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = load_settings({}, home=home, database_url=database_url, port=port,
                             bootstrap_api_key=f"{KEY}:{SECRET}")
    container = build(settings)
    first_start_admin_key(container.store, settings.home, settings.bootstrap_api_key)
    register_builtin_engines(EntityService(container.store, container))
    server = http_server(api_app(container), settings)
    base = f"http://127.0.0.1:{int(server.effective_port)}/api/1"
    pool = ThreadPoolExecutor(engine_threads, thread_name_prefix="engine")

    class ThreadEngines(Launcher):
        """Launches an action by running the no-op engine's protocol on a pool thread."""

        def launch(self, action: dict[str, Any], datastore: dict[str, Any]) -> Any:
            env = self.engine_environment(action, datastore)
            pool.submit(_engine, env["DART_API_URL"], env["DART_ACTION_ID"], env["DART_API_TOKEN"])
            return None

    orch = Orchestration(container.store, settings.s3_datastores_root)
    launcher = ThreadEngines(orch, base)
    orch.launcher = launcher  # as embedded_workers wires local engines: the queueing takes their slots
    threads = []
    for consumer in (Orchestrator(orch), launcher):
        subscription = CatchUpSubscription(container.store, consumer.name, consumer.handle, types=consumer.types,
                                           batch_size=100, poll_interval=settings.poll_interval,
                                           checkpoint_interval=0.5)
        threads.append(subscription.start())
    serving = threading.Thread(target=server.run, daemon=True, name="waitress")
    serving.start()
    try:
        yield Stack(Api(base, KEY, SECRET), container.store, threads)
    finally:
        for _, stop in threads:
            stop.set()
        for thread, _ in threads:
            thread.join(5)
        pool.shutdown(wait=True, cancel_futures=True)
        server.close()
        container.store.close()


def _engine(api_url: str, action_id: str, token: str) -> None:
    key, secret = token.split(":", 1)
    api = Api(api_url, key, secret)
    api.ok("PUT", f"/engine/action/{action_id}/checkout")
    api.ok("PUT", f"/engine/action/{action_id}/checkin", {"state": "SUCCESS", "error_message": None,
                                                          "consume_subscription_state": None})


def make_workflows(api: Api, count: int) -> list[str]:
    flows = []
    for i in range(count):
        store = api.post("/datastore", {"data": {
            "name": f"tp_{i}_{time.time_ns()}", "engine_name": "no_op_engine", "state": "ACTIVE",
            "args": {"action_sleep_time_in_seconds": 0}, "concurrency": CONCURRENCY}})
        flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {
            "name": f"tp_{i}_{time.time_ns()}", "state": "ACTIVE"}})
        api.post(f"/workflow/{flow['id']}/action", [{"data": {
            "name": "only", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}])
        flows.append(flow["id"])
    return flows


def trigger_all(api: Api, store: Any, flows: list[str], runs: int, clients: int) -> dict[str, Any]:
    """Trigger ``runs`` runs from ``clients`` threads, each when one of its workflow's concurrency slots is
    free: a client takes a free slot (a workflow), triggers it, and the slot comes back when a watcher sees
    that run's completion in the log (the store's wake-up, as any follower). A refusal (concurrency full: the
    slot came back a moment before the read model showed it) is retried after 50 ms. Returns the instance
    ids, the refusals and any other error."""
    slots: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    for _ in range(RUNS_PER_WORKFLOW_AT_ONCE):
        for flow in flows:
            slots.put(flow)
    next_run = iter(range(runs))
    lock = threading.Lock()
    instances: list[str] = []
    flow_of: dict[str, str] = {}
    refused = Counter[str]()
    errors: list[str] = []
    refusals: list[str] = []
    finished = threading.Event()

    def watcher() -> None:
        position = store.head_position()
        types = ["WorkflowInstanceCompleted", "WorkflowInstanceFailed"]
        while not finished.is_set():
            events = store.read_all(position, 1000, types=types)
            for event in events:
                with lock:
                    flow = flow_of.pop(event.entity_id, None)
                if flow is not None:
                    slots.put(flow)
            if events:
                position = events[-1].global_position
            else:
                store.wait_for_append(position, 0.2, types)

    def client() -> None:
        while True:
            with lock:
                n = next(next_run, None)
            if n is None:
                return
            flow = slots.get()
            while True:
                status, body = api.request("POST", f"/workflow/{flow}/do-manual-trigger")
                if status == 200 and isinstance(body, dict) and body.get("workflow_instance_id"):
                    with lock:
                        instances.append(body["workflow_instance_id"])
                        flow_of[body["workflow_instance_id"]] = flow
                    break
                text = json.dumps(body)
                if "concurrency" not in text.lower():
                    with lock:
                        errors.append(f"{status} {text[:200]}")
                    break
                with lock:
                    refused[flow] += 1
                    if len(refusals) < 3:
                        refusals.append(text[:300])
                time.sleep(0.05)

    watching = threading.Thread(target=watcher, daemon=True, name="bench-watcher")
    watching.start()
    threads = [threading.Thread(target=client, daemon=True, name="bench-client") for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finished.set()
    return {"instances": instances, "refused": sum(refused.values()), "errors": errors, "refusals": refusals}


def completed_instances(store: Any) -> list[Any]:
    return list(store.iter_all(types=["WorkflowInstanceCompleted", "WorkflowInstanceFailed"]))


def check_exactly_once(store: Any, instances: list[str]) -> dict[str, Any]:
    """From the log: each instance completed once (and not failed), its action launched (PENDING), checked out,
    checked in and completed once."""
    # action events carry no instance id: map actions to instances from their creations
    action_instance = {e.entity_id: (e.data.get("data") or e.data).get("workflow_instance_id")
                       for e in store.iter_all(types=["ActionCreated"])}
    per_instance: dict[str, Counter[str]] = {i: Counter() for i in instances}
    for event in store.iter_all(types=["WorkflowInstanceCompleted", "WorkflowInstanceFailed", "ActionCheckedOut",
                                       "ActionCheckedIn", "ActionCompleted", "ActionPending"]):
        owner = event.entity_id if event.category == "workflow_instance" else action_instance.get(event.entity_id)
        if owner in per_instance:
            per_instance[owner][event.type] += 1
    # ActionPending: the launch intent (one launch); the thread engines record no ActionLaunched.
    want = {"WorkflowInstanceCompleted": 1, "ActionCheckedOut": 1, "ActionCheckedIn": 1, "ActionCompleted": 1,
            "ActionPending": 1}
    bad = {i: dict(c) for i, c in per_instance.items() if any(c.get(t, 0) != n for t, n in want.items())
           or c.get("WorkflowInstanceFailed")}
    return {"instances": len(instances), "exactly_once": not bad and len(set(instances)) == len(instances),
            "bad": dict(list(bad.items())[:5]), "bad_count": len(bad)}


def run_one(database: str, runs: int, workflows: int, clients: int, engine_threads: int,
            count_statements: bool) -> dict[str, Any]:
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dart-tp-")))
        if database == "postgres":
            url = stack.enter_context(pg.temporary_database(PG_SERVER))
        else:
            url = f"sqlite:///{home / 'dart.db'}"
        counter = StatementCounter() if count_statements else None
        dart = stack.enter_context(in_process_dart(url, home, engine_threads))
        if counter is not None:
            counter.watch_appends(dart.store)
        api = dart.api
        flows = make_workflows(api, 1 if count_statements else workflows)
        result: dict[str, Any] = {"database": database, "load_start": load()}
        if counter is not None:
            result["statements"] = statements_for_one_run(api, dart.store, flows[0], counter)
            return result
        head = dart.store.head_position()
        cpu_before = time.process_time()
        started = time.time()
        triggered = trigger_all(api, dart.store, flows, runs, clients)
        trigger_seconds = time.time() - started
        instances = triggered["instances"]
        deadline = time.monotonic() + max(120.0, runs / 5)
        while time.monotonic() < deadline:
            done = [e for e in dart.store.iter_all(head, types=["WorkflowInstanceCompleted",
                                                                 "WorkflowInstanceFailed"])]
            if len(done) >= len(instances):
                break
            time.sleep(0.2)
        cpu = time.process_time() - cpu_before  # this process: API, workers, engine threads, the clients
        ends = sorted(e.recorded_at.timestamp() for e in done)
        total = ends[-1] - started if ends else float("nan")
        lo, hi = ends[len(ends) // 10], ends[(len(ends) * 9) // 10] if ends else (0, 0)
        sustained = ((len(ends) * 8) // 10) / (hi - lo) if hi > lo else float("nan")
        result.update({
            "runs": runs, "triggered": len(instances), "completed": len(done), "refused_triggers":
            triggered["refused"], "refusals": triggered["refusals"], "trigger_errors": triggered["errors"][:5], "trigger_seconds": round(trigger_seconds, 2),
            "seconds": round(total, 2), "runs_per_second": round(len(done) / total, 1) if total else None,
            "sustained_runs_per_second": round(sustained, 1), "load_end": load(),
            "process_cpu_ms_per_run": round(cpu / max(len(done), 1) * 1000, 1),
            "check": check_exactly_once(dart.store, instances),
        })
        committer = getattr(dart.store, "_committer", None)
        if committer is not None:
            result["group_commit"] = {"groups": committer.groups, "appends_in_groups": committer.grouped}
        return result


def statements_for_one_run(api: Api, store: Any, flow: str, counter: StatementCounter) -> dict[str, Any]:
    """Trigger one run of a one-action workflow and count what it costs until the instance is COMPLETED and
    the workers are idle again."""
    time.sleep(1.0)  # let the set-up's reactions settle
    head = store.head_position()
    with counter.counting() as counted:
        instance = api.request("POST", f"/workflow/{flow}/do-manual-trigger")[1]["workflow_instance_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if api.get(f"/workflow/instance/{instance}")["data"]["state"] in ("COMPLETED", "FAILED"):
                break
            time.sleep(0.05)
        time.sleep(1.5)  # the reactions after COMPLETED (checkpoints, tokens revoked) settle
    events = store.read_all(head, 10_000)
    return {**counted.summary(), "events": len(events), "event_types": dict(Counter(e.type for e in events))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--engine-threads", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="60 runs over 20 workflows on each database (CI, < 30 s)")
    parser.add_argument("--count-statements", action="store_true", help="statements and appends of one run")
    args = parser.parse_args(argv)
    runs = 60 if args.quick else args.runs
    workflows = 20 if args.quick else args.workflows
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    results = []
    for database in databases:
        print(f"[{time.strftime('%H:%M:%S')}] {database}: load {load()}", file=sys.stderr, flush=True)
        results.append(run_one(database, runs, workflows, args.clients, args.engine_threads,
                               args.count_statements))
    print()
    ok = True
    for r in results:
        if "statements" in r:
            print(f"{r['database']}: one single-action run, trigger -> COMPLETED: {json.dumps(r['statements'])}")
            continue
        check = r["check"]
        ok = ok and check["exactly_once"] and r["completed"] == r["runs"]
        print(f"{r['database']:>8}: {r['completed']:,} of {r['runs']:,} runs completed in {r['seconds']} s: "
              f"{r['runs_per_second']} runs/s overall, {r['sustained_runs_per_second']} runs/s sustained "
              f"(goal >= 200); triggers took {r['trigger_seconds']} s ({r['refused_triggers']:,} refused: "
              f"concurrency full); exactly once from the log: {check['exactly_once']}; load {r['load_start']} -> "
              f"{r['load_end']}; this process's CPU {r['process_cpu_ms_per_run']} ms per run; "
              f"group commit {r.get('group_commit')}")
    print("(the machine is shared: compare only numbers of one run)")
    print("BENCH_JSON " + json.dumps({"results": results}, default=str, separators=(",", ":")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
