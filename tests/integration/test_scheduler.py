"""The cron scheduler on SQLite and PostgreSQL: fires at the scheduled time once per (trigger, time), whatever
the replicas; catches up only the latest missed time; never fires INACTIVE triggers or times before the
trigger was armed. Time is injected: nothing here waits on the wall clock, and no engine runs (instances
stay QUEUED)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from events.streams.trigger import TriggerCreated
from events.types import ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamAppend
from services.commands.scheduler import Scheduler
from tests.support.world import ADMIN, SUCCEEDS, Clock
from tests.support.world import World as BaseWorld

MONDAY_NOON = "0 12 ? * 2 *"


@dataclass(kw_only=True)
class World(BaseWorld):
    workflow_id: str = ""  # the workflow every trigger starts unless told otherwise

    def scheduled(self, pattern: str = MONDAY_NOON, state: str = "ACTIVE",
                  workflow_ids: list[str] | None = None) -> str:
        return self.trigger("scheduled", {"cron_pattern": pattern},
                            [self.workflow_id] if workflow_ids is None else workflow_ids, state)

    def set_state(self, trigger_id: str, state: str) -> None:
        self.update("trigger", trigger_id, state=state)

    def fired(self, trigger_id: str) -> list[str]:
        """The keys of the trigger's TriggerFired events, in order."""
        return [e.data["note"]["key"] for e in self.container.store.read_stream(f"trigger-{trigger_id}")
                if e.type == "TriggerFired"]

    def skipped(self, trigger_id: str) -> int:
        stream = self.container.store.read_stream(f"trigger-{trigger_id}")
        return sum(e.type == "TriggerFireSkipped" for e in stream)

    def instances(self) -> list[dict[str, Any]]:
        return self.service.reader.find_by("workflow_instance", workflow_id=self.workflow_id)

    def replica_scheduler(self, clock: Clock) -> Scheduler:
        """Another scheduler process: its own store (connections) on the same database."""
        return Scheduler(self.replica(), clock)


@pytest.fixture
def world(db_url: str, make_world: Callable[..., World]) -> World:
    world = make_world(db_url, World)
    datastore = world.datastore("ds_sched")
    # On an ACTIVE datastore a workflow starts at concurrency 1; raise it so queued instances never block.
    world.workflow_id = world.workflow(datastore, [{"name": "a0", "action_type_name": SUCCEEDS}], "wf_sched",
                                       concurrency=10)
    return world


def next_monday_noon() -> datetime:
    """The first Monday 12:00 UTC after the real now. Call it after creating the triggers: they existed at
    that noon (so it fires) but not at the Monday noon before (so an earlier tick finds nothing due)."""
    now = datetime.now(UTC)
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=(7 - now.weekday()) % 7)
    return noon if noon > now else noon + timedelta(weeks=1)


def at(day: datetime, hour: int, minute: int, second: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute, second=second)


def key(t: datetime) -> str:
    return f"scheduled:{t.isoformat()}"


def test_fires_monday_noon_once_per_time(world: World) -> None:
    trigger_id = world.scheduled()
    noon = next_monday_noon()
    monday = noon.replace(hour=0)
    clock = Clock(at(monday, 11, 59))
    scheduler = Scheduler(world.orch, clock)

    assert scheduler.tick() == []  # 11:59: the last Monday noon is before the trigger existed
    assert world.fired(trigger_id) == [] and world.instances() == []

    clock.now = at(monday, 12, 0, 30)
    assert scheduler.tick() == [trigger_id]
    assert world.fired(trigger_id) == [key(noon)]
    [instance] = world.instances()
    assert instance["data"]["trigger_type"] == "scheduled"
    assert instance["data"]["trigger_id"] == trigger_id
    assert instance["data"]["state"] == "QUEUED"
    assert instance["data"]["user_id"] == ADMIN.user_id

    clock.now = at(monday, 12, 0, 40)
    assert scheduler.tick() == []  # the same time again: nothing new
    assert Scheduler(world.orch, clock).tick() == []  # a restarted scheduler: nothing new
    assert world.replica_scheduler(clock).tick() == []  # a replica on its own connections: nothing new
    assert world.fired(trigger_id) == [key(noon)] and len(world.instances()) == 1

    # Down from Monday 12:00:40 until the next Monday 12:05: that Monday's noon fires, once, late.
    next_noon = noon + timedelta(days=7)
    clock.now = next_noon + timedelta(minutes=5)
    assert scheduler.tick() == [trigger_id]
    assert world.replica_scheduler(clock).tick() == []
    assert scheduler.tick() == []
    assert world.fired(trigger_id) == [key(noon), key(next_noon)]
    assert len(world.instances()) == 2
    assert world.skipped(trigger_id) == 0


def test_after_downtime_only_the_latest_missed_time_fires(world: World) -> None:
    trigger_id = world.scheduled()
    noon = next_monday_noon()
    clock = Clock(noon + timedelta(seconds=1))
    scheduler = Scheduler(world.orch, clock)
    assert scheduler.tick() == [trigger_id]

    # Three Mondays pass while no scheduler runs: only the third fires; the two before are skipped for good.
    clock.now = noon + timedelta(weeks=3, hours=4)
    assert scheduler.tick() == [trigger_id]
    clock.now = noon + timedelta(weeks=3, hours=5)
    assert scheduler.tick() == []
    assert world.fired(trigger_id) == [key(noon), key(noon + timedelta(weeks=3))]
    assert len(world.instances()) == 2

    # Every 15 minutes, down for a day: one fire, for the latest quarter hour.
    quarter = world.scheduled("0/15 * * * ? *", workflow_ids=[])
    first = noon + timedelta(weeks=3, hours=5)  # 17:00
    clock.now = first + timedelta(minutes=1)
    assert scheduler.tick() == [quarter]
    clock.now = first + timedelta(days=1, minutes=20)  # 17:20 the next day: 96 quarter hours missed
    assert scheduler.tick() == [quarter]
    assert scheduler.tick() == []
    assert world.fired(quarter) == [key(first), key(first + timedelta(days=1, minutes=15))]


def test_inactive_triggers_never_fire(world: World) -> None:
    inactive = world.scheduled(state="INACTIVE")
    stopped = world.scheduled()
    noon = next_monday_noon()
    clock = Clock(noon + timedelta(seconds=30))
    scheduler = Scheduler(world.orch, clock)
    assert scheduler.tick() == [stopped]
    world.set_state(stopped, "INACTIVE")
    for week in range(1, 4):
        clock.now = noon + timedelta(weeks=week, seconds=30)
        assert scheduler.tick() == []
    assert world.fired(inactive) == []
    assert world.fired(stopped) == [key(noon)]
    assert len(world.instances()) == 1


def test_a_time_before_the_trigger_was_armed_never_fires(world: World) -> None:
    # A daily time two minutes before the real now: it passed before these triggers existed or were armed.
    passed = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    daily = f"{passed.minute} {passed.hour} * * ? *"
    created_late = world.scheduled(daily, workflow_ids=[])
    activated_late = world.scheduled(daily, state="INACTIVE", workflow_ids=[])
    world.set_state(activated_late, "ACTIVE")
    rescheduled = world.scheduled("0 0 1 1 ? 2099", workflow_ids=[])
    world.service.update("trigger", rescheduled, lambda c: {**c, "args": {"cron_pattern": daily}}, ADMIN)

    clock = Clock(datetime.now(UTC) + timedelta(minutes=1))
    scheduler = Scheduler(world.orch, clock)
    assert scheduler.tick() == []  # the latest daily time is `passed`, before each was armed
    for trigger_id in (created_late, activated_late, rescheduled):
        assert world.fired(trigger_id) == []

    clock.now = passed + timedelta(days=1, seconds=30)
    assert sorted(scheduler.tick()) == sorted([created_late, activated_late, rescheduled])
    for trigger_id in (created_late, activated_late, rescheduled):
        assert world.fired(trigger_id) == [key(passed + timedelta(days=1))]


def test_concurrent_replicas_fire_each_time_once(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dart.scheduler")
    trigger_id = world.scheduled()
    noon = next_monday_noon()
    clock = Clock(noon)
    replicas = [world.replica_scheduler(clock), world.replica_scheduler(clock)]
    expected: list[str] = []
    for week in range(5):
        clock.now = noon + timedelta(weeks=week, seconds=1)
        barrier = threading.Barrier(len(replicas))
        results: list[list[str]] = []
        errors: list[BaseException] = []

        def run(replica: Scheduler, barrier: threading.Barrier = barrier, results: list[list[str]] = results,
                errors: list[BaseException] = errors) -> None:  # this week's, bound before the threads start
            try:
                barrier.wait(timeout=30)
                results.append(replica.tick())
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert len(results) == 2 and {t for r in results for t in r} == {trigger_id}
        expected.append(key(noon + timedelta(weeks=week)))
        assert world.fired(trigger_id) == expected  # exactly one TriggerFired per time
    instances = world.instances()
    assert len(instances) == 5 and all(i["data"]["trigger_type"] == "scheduled" for i in instances)
    assert world.skipped(trigger_id) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "dart.scheduler"] == []  # no swallowed error


def test_run_sleeps_until_the_next_due_time_or_the_interval(world: World) -> None:
    trigger_id = world.scheduled()
    monday = next_monday_noon().replace(hour=0)
    clock = Clock(at(monday, 11, 58, 30))
    scheduler = Scheduler(world.orch, clock)
    stop = threading.Event()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += timedelta(seconds=seconds)
        if len(slept) == 4:
            stop.set()

    scheduler.run(stop, interval=60.0, sleep=sleep)
    # 11:58:30 -> the interval (60 s) is sooner than noon; 11:59:30 -> 30 s to noon; noon fires; then the
    # interval again, since the next Monday is far away.
    assert slept == [60.0, 30.0, 60.0, 60.0]
    assert world.fired(trigger_id) == [key(at(monday, 12, 0))]
    assert len(world.instances()) == 1


def test_an_unusable_stored_pattern_does_not_stop_the_others(world: World) -> None:
    bad_id = "BADCRON001"
    world.container.store.append(StreamAppend(f"trigger-{bad_id}", ExpectedVersion.NO_STREAM, [NewEvent(
        TriggerCreated({"name": "bad", "trigger_type_name": "scheduled", "state": "ACTIVE",
                        "args": {"cron_pattern": "0 12 * * 2 *"}, "workflow_ids": [world.workflow_id],
                        "tags": [], "user_id": "x"}), Metadata(actor="test"))]))
    good = world.scheduled()
    noon = next_monday_noon()
    scheduler = Scheduler(world.orch, Clock(noon + timedelta(seconds=5)))
    assert scheduler.tick() == [good]
    assert world.fired(bad_id) == []
    assert len(world.instances()) == 1


class _Stream:
    """A trigger stream without a database, for the arming rule's edge cases; counts its reads."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []
        self.reads: list[tuple[int, int | None]] = []

    def add(self, type_name: str, data: dict[str, Any], at_minute: int) -> None:
        version = len(self.events) + 1
        self.events.append(RecordedEvent(uuid.uuid4(), "trigger-T", version, version, type_name, 1, data, {},
                                         datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=at_minute)))

    def read_stream(self, stream_id: str, from_version: int = 1, to_version: int | None = None
                    ) -> list[RecordedEvent]:
        self.reads.append((from_version, to_version))
        return [e for e in self.events if from_version <= e.stream_version <= (to_version or 10**9)]


def test_armed_is_the_latest_activation_or_reschedule_within_a_bounded_read() -> None:
    stream = _Stream()
    orch = SimpleNamespace(store=stream)
    scheduler = Scheduler(orch, Clock(datetime(2030, 1, 1, tzinfo=UTC)))  # type: ignore[arg-type]

    def armed() -> datetime | None:
        row = SimpleNamespace(id="T", version=len(stream.events), data={"state": "ACTIVE"})
        return scheduler.armed_at(row)

    def minute(n: int) -> datetime:
        return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=n)

    stream.add("TriggerCreated", {"data": {"state": "ACTIVE", "args": {"cron_pattern": MONDAY_NOON}}}, 0)
    stream.add("TriggerFired", {"note": {"key": "k"}}, 1)
    stream.add("TriggerUpdated", {"changes": {"name": "renamed"}}, 2)
    assert armed() == minute(0)  # created ACTIVE; a fire and a rename do not re-arm
    reads = len(stream.reads)
    assert armed() == minute(0) and len(stream.reads) == reads  # cached while the version stands
    stream.add("TriggerUpdated", {"changes": {"args": {"cron_pattern": "0 9 ? * 2 *"}}}, 3)
    assert armed() == minute(3)  # re-scheduled
    stream.add("TriggerUpdated", {"changes": {"state": "INACTIVE"}}, 4)
    assert armed() is None
    stream.add("TriggerUpdated", {"changes": {"state": "ACTIVE"}}, 5)
    assert armed() == minute(5)  # re-activated
    for n in range(6, 126):
        stream.add("TriggerFired", {"note": {"key": f"k{n}"}}, n)
    # 126 events, none arming among the last 50 (versions 77-126): armed by the window's first event.
    assert armed() == minute(76)
    assert stream.reads[-1] == (77, 126)

    created_inactive = _Stream()
    created_inactive.add("TriggerCreated", {"data": {"state": "INACTIVE"}}, 0)
    other = Scheduler(SimpleNamespace(store=created_inactive), Clock(minute(0)))  # type: ignore[arg-type]
    assert other.armed_at(SimpleNamespace(id="U", version=1, data={"state": "ACTIVE"})) is None
