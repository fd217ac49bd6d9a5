"""Schedules end to end (issue 15 item 5) on `dart up`, SQLite and PostgreSQL, with the injected clock
(``DART_CLOCK_OFFSET_SECONDS``): catch-up after a simulated three-hour downtime, the overlap policies with a
slow action, backfill (a dry run from the CLI, then twice over the API), pause and unpause without a burst,
and the scheduled time an engine's date tokens stand for.

The downtime: triggers are created on a dart whose clock runs half an hour behind (nothing can come due while
they are set up), with H, the first whole hour after their creation. dart is stopped and started again with
its clock at H+2h30: H, H+1h and H+2h passed while it was down. The engines run behind
tests/support/token_ledger.py, which writes down what each launch's date tokens stand for."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.harness import pg
from bench.harness.api_client import Api
from tests.e2e.conftest import BACKENDS, KEY, SECRET, RunningDart
from tests.e2e.flows import SUCCEEDS, datastore, finished, history, instances, trigger, wait_for, workflow
from tests.support import token_ledger

INTERVAL = 0.25  # DART_SCHEDULER_INTERVAL: the longest the scheduler sleeps between two looks
HOURLY = "0 * * * ? *"
YEARLY = "0 3 1 1 ? *"  # Jan 1 03:00: its latest time is always before these triggers were armed


@dataclass
class Downtime:
    dart: RunningDart
    api: Api
    ops: Api  # an operator's key
    ledger: Path
    h: datetime  # the first scheduled hour after the triggers were created
    offset: float = 0.0  # the clock offset dart runs with now
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def now(self) -> datetime:
        """dart's (shifted) clock."""
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def restart_at(self, when: datetime) -> None:
        """Stop dart and start it again with its clock at ``when``."""
        self.dart.stop()
        self.offset = (when - datetime.now(UTC)).total_seconds()
        self.dart.start(DART_CLOCK_OFFSET_SECONDS=f"{self.offset:.3f}")

    def scheduler_looked(self, since: datetime) -> None:
        """Wait until the scheduler has looked again (its clock past ``since`` by several of its intervals)."""
        wait_for(lambda: self.now() >= since + timedelta(seconds=4 * INTERVAL), what="the scheduler's next looks")

    def fired(self, name: str) -> list[str]:
        return [e["data"]["note"]["key"].removeprefix("scheduled:")
                for e in history(self.api, "trigger", self.triggers[name]["id"]) if e["type"] == "TriggerFired"]

    def events(self, name: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in history(self.api, "trigger", self.triggers[name]["id"]) if e["type"] == kind]

    def runs(self, name: str) -> list[dict[str, Any]]:
        return sorted(instances(self.api, self.flows[name]), key=lambda i: i["data"]["scheduled_time"])


def hours(h: datetime, *offsets: int) -> list[str]:
    return [(h + timedelta(hours=n)).isoformat() for n in offsets]


@pytest.fixture(scope="module", params=BACKENDS)
def downtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Downtime]:
    home = tmp_path_factory.mktemp(f"schedules-{request.param}")
    ledger = home / "tokens.ledger"
    engines = {"no_op_engine": [sys.executable, "-m", "tests.support.token_ledger", str(ledger)]}
    # An engine runs in a private working folder: the checkout's tests package is named on its PYTHONPATH.
    env = {"DART_SCHEDULER_INTERVAL": str(INTERVAL), "DART_LOCAL_ENGINES": json.dumps(engines),
           "DART_CLOCK_OFFSET_SECONDS": "-1800", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "DART_LOCAL_ENGINE_ENV": "PYTHONPATH",
           # The launcher's stale-PENDING check runs on the shifted clock too, against the store's (wall) times:
           # with dart hours ahead, a fresh launch would look stale. Not what this module tests.
           "DART_STALE_PENDING_SECONDS": "86400"}
    if request.param == "postgres":
        server = pg.server_url_from_env()
        if server is None:
            pytest.skip(pg.SKIP_REASON)
        with pg.temporary_database(server) as url:
            dart = RunningDart(home, url, **env)
            try:
                yield set_up(dart, ledger)
            finally:
                dart.stop()
    else:
        dart = RunningDart(home, None, **env)
        try:
            yield set_up(dart, ledger)
        finally:
            dart.stop()


def set_up(dart: RunningDart, ledger: Path) -> Downtime:
    api = dart.api()
    key = api.post("/api_key", {"data": {"user_id": "ops@example.com", "role": "operator"}})
    ops = Api(api.base, key["key"], key["secret"])
    quick = datastore(api, "TEMPLATE", sleep=0)
    d = Downtime(dart, api, ops, ledger, datetime.now(UTC), offset=-1800)
    policies = {"all": {"catchup_policy": "all", "overlap_policy": "allow_all"}, "latest": {},
                "none": {"catchup_policy": "none"}, "paused": {"catchup_policy": "all", "overlap_policy": "allow_all"}}
    for name, args in policies.items():
        d.flows[name] = workflow(api, quick, [SUCCEEDS])
        d.triggers[name] = trigger(api, "scheduled", {"cron_pattern": HOURLY, **args}, [d.flows[name]["id"]])
    d.h = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    paused = ops.post(f"/trigger/{d.triggers['paused']['id']}/pause", {"reason": "upstream is late"})
    assert paused["data"]["paused"] is True and paused["data"]["pause_note"] == "upstream is late"

    d.restart_at(d.h + timedelta(hours=2, minutes=30))  # down while H, H+1h and H+2h passed
    wait_for(lambda: len(d.runs("all")) >= 3, what="the catch-up fires' runs")
    d.scheduler_looked(d.h + timedelta(hours=2, minutes=30))
    return d


def launches(d: Downtime, runs: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """What the engines of these runs' actions wrote down at their launch, by instance id."""
    actions = {}
    for run in runs:
        [action] = d.api.get("/action", params={"filters": [f"workflow_instance_id = {run['id']}"]})
        actions[run["id"]] = action["id"]

    def all_launched() -> dict[str, tuple[str, str]] | None:
        launched = token_ledger.read(d.ledger)
        return {i: launched[a] for i, a in actions.items()} if all(a in launched for a in actions.values()) else None

    return wait_for(all_launched, what="the runs' engines")  # type: ignore[no-any-return]


def test_catch_up_all_after_a_three_hour_downtime_fires_each_time_once(downtime: Downtime) -> None:
    d = downtime
    missed = hours(d.h, 0, 1, 2)
    assert d.fired("all") == missed  # each once, oldest first
    runs = d.runs("all")
    assert [r["data"]["scheduled_time"] for r in runs] == missed
    assert d.fired("latest") == missed[-1:]  # today's behaviour: the latest only
    assert d.fired("none") == [] and d.fired("paused") == []

    # Each run's engine got its own scheduled time, and its date tokens named that hour, not now's.
    launched = launches(d, runs)
    for run in runs:
        t = datetime.fromisoformat(run["data"]["scheduled_time"])
        assert launched[run["id"]] == (t.isoformat(), f"s3://bucket/day={t:%Y-%m-%d}/hour={t:%H}/")


def dart_cli(d: Downtime, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``dart`` command against this dart's API."""
    return subprocess.run([sys.executable, "-m", "services.runtime.cli", *args, "--api-url", d.api.base],
                          capture_output=True, text=True, env={"DART_HOME": str(d.dart.home), "PATH": "/usr/bin:/bin"},
                          timeout=60, check=False)


def backfill(api: Api, trigger_id: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return api.post(f"/trigger/{trigger_id}/backfill", {"start": start, "end": end, **extra})  # type: ignore[no-any-return]


def test_overlap_policies_with_a_slow_action(downtime: Downtime) -> None:
    d, api = downtime, downtime.api
    slow = datastore(api, "TEMPLATE", sleep=1)
    years = ["2023-01-01T03:00:00+00:00", "2024-01-01T03:00:00+00:00", "2025-01-01T03:00:00+00:00"]
    for policy in ("skip", "buffer_one", "allow_all"):
        d.flows[policy] = workflow(api, slow, [SUCCEEDS])  # concurrency 1
        d.triggers[policy] = trigger(api, "scheduled", {"cron_pattern": YEARLY, "overlap_policy": policy},
                                     [d.flows[policy]["id"]])
        done = backfill(d.ops, d.triggers[policy]["id"], "2023-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
        assert done["scheduled_times"] == years and done["already_fired"] == []
    assert len(instances(api, d.flows["allow_all"])) == 3  # started at once, beyond the concurrency of 1
    assert len(instances(api, d.flows["skip"])) == 1 and len(d.events("skip", "TriggerFireSkipped")) == 2
    assert len(instances(api, d.flows["buffer_one"])) == 1
    [buffered] = d.events("buffer_one", "TriggerFireBuffered")
    assert buffered["data"]["changes"]["last_buffered"][d.flows["buffer_one"]["id"]]["scheduled_time"] == years[1]
    [dropped] = d.events("buffer_one", "TriggerFireSkipped")  # one waits at most; the third is dropped
    assert "already waiting" in dropped["data"]["note"]["reason"]

    first, second = sorted(finished(api, d.flows["buffer_one"], count=2), key=lambda r: r["data"]["scheduled_time"])
    assert [first["data"]["scheduled_time"], second["data"]["scheduled_time"]] == years[:2]
    assert second["data"]["queued_time"] >= first["data"]["end_time"]  # it started when the first run ended
    assert len(finished(api, d.flows["allow_all"], count=3)) == 3
    assert [r["data"]["scheduled_time"] for r in finished(api, d.flows["skip"])] == years[:1]


def test_backfill_dry_run_lists_exactly_the_times_and_twice_fires_each_once(downtime: Downtime) -> None:
    d, api = downtime, downtime.api
    d.flows["week"] = workflow(api, datastore(api, "TEMPLATE", sleep=0), [SUCCEEDS], concurrency=3)
    d.triggers["week"] = trigger(api, "scheduled", {"cron_pattern": "0 2 * * ? 2020-2025"}, [d.flows["week"]["id"]])
    week = [f"2025-11-{day:02d}T02:00:00+00:00" for day in range(1, 8)]
    start, end = "2025-11-01T00:00:00Z", "2025-11-07T23:59:59Z"

    cli = dart_cli(d, "triggers", "backfill", d.triggers["week"]["id"], "--start", start, "--end", end, "--dry-run",
                   "--key", f"{KEY}:{SECRET}")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.split() == week  # exactly the times, and nothing fired
    assert d.fired("week") == [] and instances(api, d.flows["week"]) == []

    three = "2025-11-03T02:00:00Z"  # the first three days of it, twice
    first = backfill(d.ops, d.triggers["week"]["id"], start, three)
    assert first == {"dry_run": False, "scheduled_times": week[:3], "already_fired": []}
    again = backfill(d.ops, d.triggers["week"]["id"], start, three)
    assert again == {"dry_run": False, "scheduled_times": [], "already_fired": week[:3]}
    assert d.fired("week") == week[:3]
    runs = instances(api, d.flows["week"])
    assert sorted(r["data"]["scheduled_time"] for r in runs) == week[:3] and len(runs) == 3
    [noted] = d.events("week", "TriggerBackfilled")  # the second request recorded nothing
    assert noted["metadata"]["actor"] == "ops@example.com"
    assert backfill(d.ops, d.triggers["week"]["id"], start, end, dry_run=True)["already_fired"] == week[:3]

    # A backfilled run's engine loads the data of its own day.
    for run_id, (scheduled, path) in launches(d, runs).items():
        [run] = [r for r in runs if r["id"] == run_id]
        assert scheduled == run["data"]["scheduled_time"]
        assert path == f"s3://bucket/day={scheduled[:10]}/hour=02/"

    # Over times the schedule fired itself: only the one it did not fire runs.
    around = backfill(d.ops, d.triggers["all"]["id"], *hours(d.h, -1, 1))
    assert around["scheduled_times"] == hours(d.h, -1) and around["already_fired"] == hours(d.h, 0, 1)


def test_backfill_and_pause_refusals(downtime: Downtime) -> None:
    d = downtime
    trigger_id = d.triggers["latest"]["id"]
    viewer = d.api.post("/api_key", {"data": {"user_id": "viewer@example.com", "role": "viewer"}})
    status, _ = Api(d.api.base, viewer["key"], viewer["secret"]).request(
        "POST", f"/trigger/{trigger_id}/pause", {"reason": "x"})
    assert status == 403
    for body, field_name in [({}, "reason"), ({"reason": " "}, "reason")]:
        status, answer = d.ops.request("POST", f"/trigger/{trigger_id}/pause", body)
        assert status == 400 and answer["error_message"].startswith(f"{field_name}: ")
    future = (d.now() + timedelta(days=1)).isoformat()
    for body, field_name in [({"start": "2025-01-01T00:00:00Z"}, "end"),
                             ({"start": "2025-01-01T00:00:00Z", "end": future}, "end"),
                             ({"start": "2025-01-01", "end": "2025-01-02T00:00:00Z"}, "start"),
                             ({"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z", "dry_run": 1},
                              "dry_run")]:
        status, answer = d.ops.request("POST", f"/trigger/{trigger_id}/backfill", body)
        assert status == 400 and answer["error_message"].startswith(f"{field_name}: "), answer
    status, _ = d.ops.request("POST", "/trigger/NOSUCHTRIG/backfill", {"start": "2025-01-01T00:00:00Z",
                                                                        "end": "2025-01-02T00:00:00Z"})
    assert status == 404


def test_pause_stops_fires_and_unpause_resumes_without_a_burst(downtime: Downtime) -> None:
    d = downtime
    trigger_id = d.triggers["paused"]["id"]
    assert d.fired("paused") == [] and d.runs("paused") == []  # paused through the downtime

    ops_key = d.ops.auth  # the operator's key:secret, for the CLI
    assert ops_key is not None
    key = base64.b64decode(ops_key.removeprefix("Basic ")).decode()
    out = dart_cli(d, "triggers", "unpause", trigger_id, "--reason", "upstream is back", "--key", key)
    assert out.returncode == 0 and out.stdout.strip() == f"trigger {trigger_id} is not paused", out.stderr
    assert d.api.get(f"/trigger/{trigger_id}")["data"]["paused"] is False
    [paused] = d.events("paused", "TriggerPaused")
    [unpaused] = d.events("paused", "TriggerUnpaused")
    assert paused["metadata"]["actor"] == unpaused["metadata"]["actor"] == "ops@example.com"
    assert unpaused["data"]["changes"]["pause_note"] == "upstream is back"
    d.scheduler_looked(d.now())
    assert d.fired("paused") == []  # no burst of H, H+1h, H+2h, though its catch-up policy is all

    d.restart_at(d.h + timedelta(hours=3, seconds=30))  # the next time after the unpause, H+3h, has passed
    wait_for(lambda: d.runs("paused"), what="the run of the paused trigger's fire after its unpause")
    d.scheduler_looked(d.h + timedelta(hours=3, seconds=30))
    assert d.fired("paused") == hours(d.h, 3)  # resumed at the next time
    assert [r["data"]["scheduled_time"] for r in d.runs("paused")] == hours(d.h, 3)
    fired = d.fired("all")  # each time once, across both restarts (and the backfill of H-1h)
    assert len(fired) == len(set(fired)) and set(hours(d.h, 0, 1, 2, 3)) <= set(fired)
    assert d.fired("none") == []  # H+3h also passed while dart was down
