"""`dart up` SIGKILLed again and again while a chain of workflows runs, restarted each time on the same home,
database and port (issue 4's bar: ≥ 10 kills, 0 lost events, 0 actions launched twice), on SQLite and on
PostgreSQL.

Half the kills come while an engine is RUNNING: the local engine process outlives the `dart up` that started
it (nothing supervises it any more) and must check in with the restarted one, which takes it from there. The
other half land wherever the chain happens to be. Each kill waits for the chain to have moved on since the
previous restart, so every kill hits a live system.

Launches are counted by the engines themselves: the no_op engine runs behind tests/support/launch_ledger.py,
which writes a line per start, so "launched twice" does not rely on what dart recorded."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bench.harness import pg
from bench.harness.api_client import Api
from tests.e2e.flows import (
    SUCCEEDS,
    datastore,
    finished,
    history,
    instance_actions,
    instances,
    register_no_op,
    trigger,
    wait_for,
    workflow,
)
from tests.e2e.stacks import EMBEDDED_POSTGRES, EMBEDDED_SQLITE, RunningDart, pg_server_or_skip
from tests.support import launch_ledger

KILLS = 12
CHAIN = 10  # workflows of two actions each, started one by the other: it outlasts the kills by far
ENGINE_SECONDS = 1  # each action's engine runs this long: long enough to be caught RUNNING
# A kill between taking a slot and starting the engine leaves the action PENDING with no engine: it goes back
# to the queue after this long. It must stay well above the time an orphaned engine needs to reach the
# restarted dart (its retries back off from 0.5 s), or an engine already started could be started again.
STALE_PENDING_SECONDS = "20"
CONSUMERS = ("orchestrator", "launcher", "notifier")


@pytest.fixture(params=[
    (EMBEDDED_SQLITE, "cold"), (EMBEDDED_SQLITE, "warm"),
    pytest.param((EMBEDDED_POSTGRES, "cold"), marks=pytest.mark.postgres),
    pytest.param((EMBEDDED_POSTGRES, "warm"), marks=pytest.mark.postgres),
], ids=lambda p: "-".join(p))
def dart(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningDart]:
    """`dart up` whose no_op engine writes each start to a ledger: a new interpreter per action (cold), or a
    fork of the engine module's warm parent (warm, issue 16)."""
    wiring, start = request.param
    ledger = tmp_path / "launches.txt"
    engines: dict[str, Any] = {"no_op_engine": (
        [sys.executable, "-m", "tests.support.launch_ledger", str(ledger)] if start == "cold"
        else {"module": "tests.support.launch_ledger", "args": [str(ledger)]})}
    with ExitStack() as stack:
        database_url = None
        if wiring == EMBEDDED_POSTGRES:
            database_url = stack.enter_context(pg.temporary_database(pg_server_or_skip()))
        # An engine runs in a private working folder: the checkout's tests package is named on its PYTHONPATH.
        running = RunningDart(tmp_path, database_url, DART_POLL_INTERVAL="0.2",
                              DART_LOCAL_ENGINES=json.dumps(engines), DART_STALE_PENDING_SECONDS=STALE_PENDING_SECONDS,
                              PYTHONPATH=str(Path(__file__).resolve().parents[2]), DART_LOCAL_ENGINE_ENV="PYTHONPATH")
        running.ledger = ledger  # type: ignore[attr-defined]
        running.start_mode = start  # type: ignore[attr-defined]
        try:
            yield running
        finally:
            running.stop()
            for _, pid, _ in launch_ledger.read(ledger):  # engines a killed dart left behind, if any still run
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def diagnosis(dart: RunningDart) -> str:
    """What to read when the chain stops moving: the newest events, the consumers' checkpoints, the live
    actions, the end of dart's own log and, on PostgreSQL, what each of the database's sessions waits for."""
    import sqlalchemy as sa

    from events.checkpoints import read_checkpoint

    lines = [f"head {dart.head_position()}"]
    with dart.engine().connect() as conn:
        lines += [f"checkpoint {c}: {read_checkpoint(conn, c)}" for c in CONSUMERS]
        lines += [" ".join(map(str, row)) for row in conn.execute(sa.text(
            "SELECT global_position, type, stream_id, recorded_at FROM events ORDER BY global_position DESC"
            " LIMIT 25"))]
        lines += ["live action " + " ".join(map(str, row)) for row in conn.execute(sa.text(
            "SELECT id, state, updated FROM rm_action WHERE state NOT IN ('COMPLETED', 'FAILED',"
            " 'HAS_NEVER_RUN') AND workflow_instance_id IS NOT NULL"))]
        if dart.wiring == EMBEDDED_POSTGRES:
            lines += ["session " + " ".join(map(str, row)) for row in conn.execute(sa.text(
                "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 80)"
                " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))]
    log = dart.home / "logs" / "up.log"
    if log.exists():
        lines += ["up.log: " + line for line in log.read_text(errors="replace").splitlines()[-40:]]
    return "\n".join(lines)


def waiting(dart: RunningDart, check: Callable[[], Any], what: str) -> None:
    try:
        wait_for(check, timeout=120, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnosis(dart)}") from None


def running_action(api: Api) -> str | None:
    found = api.get("/action", params={"filters": ["state = RUNNING"], "limit": 1})
    return found[0]["id"] if found else None


def test_sigkilled_dart_up_restarts_and_loses_nothing(dart: RunningDart) -> None:
    api = dart.api()
    register_no_op(api)
    flows = [workflow(api, datastore(api, sleep=ENGINE_SECONDS), [SUCCEEDS, SUCCEEDS]) for _ in range(CHAIN)]
    triggers = [trigger(api, "workflow_completion", {"completed_workflow_id": up["id"]}, [down["id"]])
                for up, down in zip(flows, flows[1:])]
    api.post(f"/workflow/{flows[0]['id']}/do-manual-trigger", None)

    killed_at: dict[int, datetime] = {}  # dart up pid -> when it was killed
    last = flows[-1]
    for kill in range(KILLS):
        seen = dart.head_position()
        if kill % 2:
            waiting(dart, lambda: (dart.head_position() > seen and running_action(api)) or instances(api, last),
                    what=f"an engine running before kill {kill + 1}")
        else:
            waiting(dart, lambda: dart.head_position() >= seen + 3 or instances(api, last),
                    what=f"progress before kill {kill + 1}")
        assert not instances(api, last), f"the chain reached its last workflow after {kill} kills: lengthen it"
        pid = dart.proc.pid
        dart.kill()
        killed_at[pid] = datetime.now().astimezone()
        dart.start()
    assert len(killed_at) == KILLS >= 10

    # Every run completes, once.
    actions = []
    for flow in flows:
        [instance] = finished(api, flow, timeout=240)
        assert instance["data"]["state"] == "COMPLETED", [  # say which action failed and why
            (a["id"], a["data"]["state"], a["data"].get("error_message")) for a in instance_actions(api, instance)]
        actions += instance_actions(api, instance)
    assert len(actions) == 2 * CHAIN
    for fired in triggers:
        assert [e["type"] for e in history(api, "trigger", fired["id"])].count("TriggerFired") == 1

    # Every action ran on exactly one engine, and its life is in the log once: nothing lost, nothing doubled.
    launches = launch_ledger.read(dart.ledger)  # type: ignore[attr-defined]
    assert Counter(a for a, _, _ in launches) == Counter(a["id"] for a in actions)
    outlived = 0
    for action in actions:
        assert action["data"]["state"] == "COMPLETED"
        events = history(api, "action", action["id"])
        types = Counter(e["type"] for e in events)
        assert types["ActionCheckedOut"] == types["ActionCheckedIn"] == types["ActionCompleted"] == 1, types
        assert types["ActionLaunched"] <= 1 and types["ActionPending"] == types["ActionRequeued"] + 1, types
        [launcher_pid] = [parent for a, _, parent in launches if a == action["id"]]
        checked_in = next(datetime.fromisoformat(e["recorded_at"]) for e in events if e["type"] == "ActionCheckedIn")
        if launcher_pid in killed_at and checked_in > killed_at[launcher_pid]:
            outlived += 1  # its engine checked in with a later dart than the one that started it
    assert outlived >= 1, "no engine outlived a killed dart up: the kills never hit a running engine"
    forked = sum(api.get(f"/action/{a['id']}/logs")["text"].startswith("--- dart: a warm fork of ") for a in actions)
    assert forked == (len(actions) if dart.start_mode == "warm" else 0)  # type: ignore[attr-defined]

    # And every worker has handled the whole log.
    head = dart.head_position()
    for consumer in CONSUMERS:
        wait_for(lambda: dart.consumer_caught_up(consumer, head, []), what=f"{consumer} caught up")


def test_an_engine_left_by_a_killed_dart_up_is_watched_by_the_next_one(dart: RunningDart) -> None:
    """The restarted `dart up` adopts the engine the killed one started (its pid is the action's task,
    local:<pid>): when that engine dies without checking in, its action FAILS and the instance with it,
    instead of staying RUNNING with the datastore's slot taken forever (the slot is free again: FAILED is
    not one of the busy states)."""
    api = dart.api()
    register_no_op(api)
    flow = workflow(api, datastore(api, sleep=60), [SUCCEEDS])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    action_id = wait_for(lambda: running_action(api), what="the first action RUNNING")
    action = api.get(f"/action/{action_id}")["data"]
    [engine_pid] = [pid for a, pid, _ in launch_ledger.read(dart.ledger) if a == action_id]  # type: ignore[attr-defined]
    assert action["ecs_task_arn"] == f"local:{engine_pid}"

    dart.kill()
    dart.start()
    wait_for(lambda: "watching 1 engine(s)" in (dart.home / "dart.log").read_text(),
             what="the restarted dart up adopting the engine")
    assert api.get(f"/action/{action_id}")["data"]["state"] == "RUNNING"  # alive: left alone
    assert dart.kill_engine(action_id) == 1

    failed = wait_for(lambda: (a := api.get(f"/action/{action_id}")["data"])["state"] == "FAILED" and a,
                      what="the lost engine's action FAILED")
    assert failed["error_message"] == f"its engine process (pid {engine_pid}) exited without checking in"
    [instance] = finished(api, flow)
    assert instance["data"]["state"] == "FAILED"
