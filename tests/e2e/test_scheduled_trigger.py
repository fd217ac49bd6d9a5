"""A scheduled trigger fires on time, once, end to end (reference §7; design.md §4, §6), with no wait for the
wall clock: ``DART_CLOCK_OFFSET_SECONDS`` shifts the scheduler's clock so that a scheduled time T, a whole
minute at least ten minutes ahead, comes a few seconds after the scheduler starts.

The trigger (a daily AWS 6-field cron at T's minute and hour) is created before any scheduler runs with the
offset, so it is armed long before T. Embedded: `dart up` is restarted with the offset on the same home.
Production: two `dart worker scheduler` processes start with the offset; both wake at T, and the fire,
keyed by (trigger, T), still happens once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.commands.context import derived_event_id
from services.commands.scheduler import fire_cause
from bench.harness.api_client import Api
from tests.e2e.flows import (
    SUCCEEDS,
    datastore,
    finished,
    history,
    instances,
    register_no_op,
    trigger,
    wait_for,
    workflow,
)
from tests.e2e.stacks import TWO_WIRINGS, Production, RunningDart, Running, running

LEAD_SECONDS = 5.0  # T comes this long after the scheduler(s) start: more than `dart up` needs to start
INTERVAL = "0.5"  # DART_SCHEDULER_INTERVAL: the longest a scheduler sleeps between two looks


@dataclass
class Schedule:
    dart: Running
    api: Api
    target: datetime


@pytest.fixture(scope="module", params=TWO_WIRINGS)
def schedule(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Schedule]:
    home = tmp_path_factory.mktemp(f"schedule-{request.param}")
    now = datetime.now(UTC)
    target = (now + timedelta(minutes=11)).replace(second=0, microsecond=0)
    with running(request.param, home, env={"DART_SCHEDULER_INTERVAL": INTERVAL}, schedulers=2,
                 start_schedulers=False) as dart:
        api = dart.api()
        register_no_op(api)
        yield Schedule(dart, api, target)


def start_schedulers_before(schedule: Schedule) -> float:
    """(Re)start the scheduler(s) with their clock set LEAD_SECONDS before the target; returns the offset."""
    offset = (schedule.target - datetime.now(UTC)).total_seconds() - LEAD_SECONDS
    setting = {"DART_CLOCK_OFFSET_SECONDS": f"{offset:.3f}"}
    dart = schedule.dart
    if isinstance(dart, RunningDart):
        dart.stop()
        dart.start(**setting)
    else:
        assert isinstance(dart, Production) and len(dart.scheduler_names) == 2
        dart.start_schedulers(**setting)
    return offset


def test_a_scheduled_trigger_fires_once_at_its_time(schedule: Schedule) -> None:
    api, target = schedule.api, schedule.target
    flow = workflow(api, datastore(api), [SUCCEEDS])
    cron = f"{target.minute} {target.hour} * * ? *"
    scheduled = trigger(api, "scheduled", {"cron_pattern": cron}, [flow["id"]])
    assert instances(api, flow) == []

    offset = start_schedulers_before(schedule)
    [instance] = finished(api, flow)
    assert instance["data"]["state"] == "COMPLETED"
    assert instance["data"]["trigger_type"] == "scheduled" and instance["data"]["trigger_id"] == scheduled["id"]

    # Every scheduler has had its look at T (each sleeps at most INTERVAL): a second fire would be there now.
    def every_scheduler_looked() -> bool:
        if isinstance(schedule.dart, Production):
            assert all(schedule.dart.alive(n) for n in schedule.dart.scheduler_names)
        shifted_now = datetime.now(UTC) + timedelta(seconds=offset)
        return shifted_now >= target + 4 * timedelta(seconds=float(INTERVAL))

    wait_for(every_scheduler_looked, what="every scheduler past T")
    assert len(instances(api, flow)) == 1
    fires = [e for e in history(api, "trigger", scheduled["id"]) if e["type"] == "TriggerFired"]
    assert len(fires) == 1
    [fire] = fires
    assert fire["data"]["note"]["key"] == f"scheduled:{target.isoformat()}"
    cause = fire_cause(scheduled["id"], target)  # one fire per (trigger, scheduled time), on every replica
    assert fire["event_id"] == str(derived_event_id(cause, f"fired:{scheduled['id']}"))
    fired_at = datetime.fromisoformat(fire["recorded_at"]) + timedelta(seconds=offset)
    assert fired_at >= target  # not early, on the scheduler's clock
