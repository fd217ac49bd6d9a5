"""Schedules (issue 15 item 5) on SQLite and PostgreSQL, with the scheduler's clock injected: catch-up
policies after downtime, pause and unpause without a burst, the overlap policies, backfill (dry run, twice,
never a time the schedule fired) and the scheduled time an engine gets. No engine runs: a run's end is its
``WorkflowInstanceCompleted`` appended as the orchestrator would (tests/e2e/test_schedules.py runs engines)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.streams.workflow_instance import WorkflowInstanceCompleted
from events.types import Metadata, NewEvent, StreamAppend
from services.commands.scheduler import Scheduler
from services.commands.schedules import backfill, scheduled_time_environment, set_paused
from services.domain import schedules
from services.domain.errors import BadRequest
from tests.support.world import SUCCEEDS, Clock
from tests.support.world import World as BaseWorld

HOURLY = "0 * * * ? *"


@dataclass(kw_only=True)
class World(BaseWorld):
    datastore_id: str = ""

    def flow(self, concurrency: int) -> str:
        return self.workflow(self.datastore_id, [{"name": "a0", "action_type_name": SUCCEEDS}],
                             concurrency=concurrency)

    def scheduled(self, workflow_id: str, **args: Any) -> str:
        return self.trigger("scheduled", {"cron_pattern": HOURLY, **args}, [workflow_id])

    def events(self, trigger_id: str, kind: str) -> list[Any]:
        return [e for e in self.store.read_stream(f"trigger-{trigger_id}") if e.type == kind]

    def fired(self, trigger_id: str) -> list[str]:
        return [e.data["note"]["key"].removeprefix("scheduled:") for e in self.events(trigger_id, "TriggerFired")]

    def runs(self, workflow_id: str) -> list[dict[str, Any]]:
        found = self.service.reader.find_by("workflow_instance", workflow_id=workflow_id)
        return sorted(found, key=lambda i: i["data"]["scheduled_time"])

    def end_run(self, instance_id: str) -> None:
        row = self.service.reader.row("workflow_instance", instance_id)
        assert row is not None
        self.store.append(StreamAppend(f"workflow_instance-{instance_id}", row.version, [NewEvent(
            WorkflowInstanceCompleted({"state": "COMPLETED", "end_time": datetime.now(UTC).isoformat()}),
            Metadata(actor="orchestrator"))]))


@pytest.fixture
def world(db_url: str, make_world: Callable[..., World]) -> World:
    world = make_world(db_url, World)
    world.datastore_id = world.datastore("ds_schedules")
    return world


def next_hour(after: datetime) -> datetime:
    return after.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def iso(t: datetime) -> str:
    return t.isoformat()


def test_catch_up_after_three_hours_down_fires_per_policy(world: World) -> None:
    flow = world.flow(concurrency=10)
    every = world.scheduled(flow, catchup_policy="all", overlap_policy="allow_all")
    latest = world.scheduled(flow)  # the default: the latest missed time only
    none = world.scheduled(flow, catchup_policy="none")
    h1 = next_hour(datetime.now(UTC))  # the first hour after the triggers were created
    clock = Clock(h1 + timedelta(hours=2, minutes=30))  # dart comes back after h1, h1+1h and h1+2h passed
    scheduler = Scheduler(world.orch, clock)

    assert sorted(scheduler.tick()) == sorted([every, latest])
    missed = [iso(h1 + timedelta(hours=n)) for n in range(3)]
    assert world.fired(every) == missed
    assert world.fired(latest) == missed[-1:]
    assert world.fired(none) == []
    assert scheduler.tick() == [] and Scheduler(world.orch, clock).tick() == []  # each time once, restarts too
    assert world.fired(every) == missed

    clock.now = h1 + timedelta(hours=3, seconds=5)  # the next hour comes while it runs: every policy fires it
    assert sorted(scheduler.tick()) == sorted([every, latest, none])
    assert world.fired(none) == [iso(h1 + timedelta(hours=3))]
    assert [r["data"]["scheduled_time"] for r in world.runs(flow)].count(missed[0]) == 1
    assert len(world.runs(flow)) == 3 + 1 + 3


def test_all_keeps_to_its_catch_up_window(world: World) -> None:
    trigger_id = world.scheduled("", catchup_policy="all", catchup_window_seconds=5400)
    h1 = next_hour(datetime.now(UTC))
    clock = Clock(h1 + timedelta(hours=2, minutes=30))
    Scheduler(world.orch, clock).tick()
    assert world.fired(trigger_id) == [iso(h1 + timedelta(hours=1)), iso(h1 + timedelta(hours=2))]


def test_all_catches_up_a_long_downtime_over_several_ticks(world: World) -> None:
    trigger_id = world.trigger("scheduled", {"cron_pattern": "* * * * ? *", "catchup_policy": "all",
                                             "catchup_window_seconds": 3 * 3600}, [])
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    clock = Clock(start + timedelta(hours=5, seconds=30))  # 300 minutes missed, 180 of them in the window
    scheduler = Scheduler(world.orch, clock)
    assert scheduler.tick() == [trigger_id] and len(world.fired(trigger_id)) == schedules.MAX_CATCHUP_PER_TICK
    assert Scheduler(world.orch, clock).tick() == [trigger_id]  # a restarted scheduler goes on with the rest
    assert scheduler.tick() == [] and Scheduler(world.orch, clock).tick() == []
    fired = world.fired(trigger_id)
    assert len(fired) == len(set(fired)) == 180  # the minutes of the last three hours, each once
    assert fired == sorted(fired) and fired[0] == iso(start + timedelta(hours=2, minutes=1))


def test_pause_stops_fires_and_unpause_resumes_without_a_burst(world: World) -> None:
    flow = world.flow(concurrency=10)
    trigger_id = world.scheduled(flow, catchup_policy="all")
    h1 = next_hour(datetime.now(UTC))
    clock = Clock(h1 - timedelta(minutes=1))
    world.orch.clock = clock  # the API's clock is the scheduler's (settings' clock_offset_seconds)
    assert set_paused(world.orch, trigger_id, True, "upstream late", "ops@example.com")
    assert not set_paused(world.orch, trigger_id, True, "again", "ops@example.com")  # nothing recorded
    [paused] = world.events(trigger_id, "TriggerPaused")
    assert paused.metadata["actor"] == "ops@example.com" and paused.data["changes"]["pause_note"] == "upstream late"
    scheduler = Scheduler(world.orch, clock)

    clock.now = h1 + timedelta(hours=2, minutes=30)  # three times pass while it is paused
    assert scheduler.tick() == []
    assert set_paused(world.orch, trigger_id, False, "upstream back", "ops@example.com")
    assert world.service.reader.data("trigger", trigger_id)["paused"] is False
    assert scheduler.tick() == [] and Scheduler(world.orch, clock).tick() == []  # no burst of the missed ones
    assert world.fired(trigger_id) == []

    clock.now = h1 + timedelta(hours=3, seconds=1)  # the next time after the unpause fires
    assert scheduler.tick() == [trigger_id]
    assert world.fired(trigger_id) == [iso(h1 + timedelta(hours=3))]


def test_pause_is_for_scheduled_triggers_only(world: World) -> None:
    event_trigger = world.trigger("event", {"event_id": world.event()}, [])
    with pytest.raises(BadRequest, match="^trigger_type_name: "):
        set_paused(world.orch, event_trigger, True, "x", "ops")


def backfill_three(world: World, trigger_id: str, start: datetime) -> schedules.BackfillRequest:
    return schedules.BackfillRequest(start, start + timedelta(hours=2), False, None)


def test_overlap_skip_buffer_one_and_allow_all(world: World) -> None:
    start = next_hour(datetime.now(UTC)) - timedelta(days=2)
    world.orch.clock = Clock(datetime.now(UTC))
    times = [iso(start + timedelta(hours=n)) for n in range(3)]
    outcome = {}
    for policy in schedules.OVERLAP_POLICIES:
        flow = world.flow(concurrency=1)
        trigger_id = world.scheduled(flow, overlap_policy=policy)
        done = backfill(world.orch, trigger_id, backfill_three(world, trigger_id, start), "ops@example.com")
        assert done.scheduled_times == times and world.fired(trigger_id) == times
        outcome[policy] = (flow, trigger_id)

    flow, skip = outcome["skip"]
    assert [r["data"]["scheduled_time"] for r in world.runs(flow)] == times[:1]
    assert len(world.events(skip, "TriggerFireSkipped")) == 2

    flow, _ = outcome["allow_all"]
    assert [r["data"]["scheduled_time"] for r in world.runs(flow)] == times  # beyond the concurrency of 1

    flow, buffer_one = outcome["buffer_one"]
    [first] = world.runs(flow)
    assert first["data"]["scheduled_time"] == times[0]
    [buffered] = world.events(buffer_one, "TriggerFireBuffered")
    assert buffered.data["changes"]["last_buffered"][flow]["scheduled_time"] == times[1]
    [skipped] = world.events(buffer_one, "TriggerFireSkipped")  # one waits at most: the third is dropped
    assert "already waiting" in skipped.data["note"]["reason"]
    scheduler = Scheduler(world.orch, Clock(start + timedelta(hours=2, minutes=10)))
    scheduler.tick()
    assert len(world.runs(flow)) == 1  # the first run is still on
    world.end_run(first["id"])
    scheduler.tick()
    assert [r["data"]["scheduled_time"] for r in world.runs(flow)] == times[:2]
    scheduler.tick()
    assert len(world.runs(flow)) == 2  # started once


def test_backfill_dry_run_then_twice_fires_each_time_once(world: World) -> None:
    flow = world.flow(concurrency=10)
    trigger_id = world.trigger("scheduled", {"cron_pattern": "0 2 * * ? *", "overlap_policy": "allow_all"}, [flow])
    now = datetime.now(UTC)
    today = now.replace(hour=2, minute=0, second=0, microsecond=0)
    last = today if today > now else today + timedelta(days=1)  # the first 02:00 after the trigger was armed
    clock = Clock(last + timedelta(minutes=1))
    world.orch.clock = clock
    assert Scheduler(world.orch, clock).tick() == [trigger_id]  # the schedule fires `last` itself
    week = [iso(last - timedelta(days=6 - d)) for d in range(7)]  # a week of 02:00s, `last` the 7th
    week_start = last - timedelta(days=6)

    dry = backfill(world.orch, trigger_id, schedules.BackfillRequest(week_start, last, True, None), "ops@example.com")
    assert dry.scheduled_times == week[:6] and dry.already_fired == week[6:]
    assert world.fired(trigger_id) == week[6:] and len(world.runs(flow)) == 1  # a dry run fires nothing

    three = schedules.BackfillRequest(week_start, week_start + timedelta(days=2), False, None)
    assert backfill(world.orch, trigger_id, three, "ops@example.com").scheduled_times == week[:3]
    whole = schedules.BackfillRequest(week_start, last, False, None)
    first = backfill(world.orch, trigger_id, whole, "ops@example.com")
    assert first.scheduled_times == week[3:6] and first.already_fired == week[:3] + week[6:]
    again = backfill(world.orch, trigger_id, whole, "ops@example.com")
    assert again.scheduled_times == [] and again.already_fired == week
    assert sorted(world.fired(trigger_id)) == week  # each time once, whoever fired it first
    runs = world.runs(flow)
    assert [r["data"]["scheduled_time"] for r in runs] == week
    assert all(r["data"]["user_id"] == "ops@example.com" for r in runs[:6])
    noted = world.events(trigger_id, "TriggerBackfilled")
    assert [n.data["note"]["count"] for n in noted] == [3, 3]  # the twice-run request recorded nothing
    assert noted[0].metadata["actor"] == "ops@example.com"

    # An engine of one of these runs learns its own day.
    [action] = world.service.reader.find_by("action", workflow_instance_id=runs[4]["id"])
    assert scheduled_time_environment(world.orch, {**action["data"], "id": action["id"]}) == {
        "DART_SCHEDULED_TIME": week[4]}


def test_backfill_refusals_name_the_field(world: World) -> None:
    flow = world.flow(concurrency=1)
    trigger_id = world.scheduled(flow)
    now = datetime.now(UTC)
    world.orch.clock = Clock(now)
    future = schedules.BackfillRequest(now - timedelta(hours=3), now + timedelta(hours=3), True, None)
    with pytest.raises(BadRequest, match="^end: .* is in the future"):
        backfill(world.orch, trigger_id, future, "ops")
    world.update("trigger", trigger_id, state="INACTIVE")
    past = schedules.BackfillRequest(now - timedelta(hours=3), now, True, None)
    with pytest.raises(BadRequest, match="^state: "):
        backfill(world.orch, trigger_id, past, "ops")
