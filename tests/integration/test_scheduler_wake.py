"""The scheduler is woken by trigger changes (issue 11): a scheduled trigger created while the scheduler sleeps
(up to its 30 s interval) fires within 1 s of its time, whether it was created through the scheduler's own
store (``dart up``) or by another process. The clock is injected: the trigger is due the moment it exists."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from services.commands.entities import EntityService
from services.commands.scheduler import Scheduler
from tests.integration.test_scheduler import MONDAY_NOON, Clock, World, next_monday_noon
from tests.support.world import ADMIN, SUCCEEDS

INTERVAL = 30.0  # what the scheduler would otherwise sleep with no trigger due


@pytest.fixture
def world(db_url: str, make_world: Callable[..., World]) -> World:
    world = make_world(db_url, World)
    datastore = world.datastore("ds_wake")
    world.workflow_id = world.workflow(datastore, [{"name": "a0", "action_type_name": SUCCEEDS}], "wf_wake",
                                       concurrency=10)
    return world


@pytest.fixture
def sleeping(world: World) -> Iterator[tuple[Scheduler, Clock]]:
    """A scheduler running in its own thread with no trigger yet: after its first tick it sleeps INTERVAL."""
    noon = next_monday_noon()
    clock = Clock(noon + timedelta(milliseconds=200))  # Monday noon has just passed, as the clock says
    scheduler = Scheduler(world.orch, clock)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop, INTERVAL, None, 0.2), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while scheduler.ticks < 1 and time.monotonic() < deadline:  # the first tick found nothing: now it sleeps
        time.sleep(0.01)
    # The set-up's own appends may wake it once more (their NOTIFY can arrive after the first tick): wait until
    # it has been still for half a second, asleep for its INTERVAL.
    seen, still_since = scheduler.ticks, time.monotonic()
    while time.monotonic() - still_since < 0.5 and time.monotonic() < deadline:
        time.sleep(0.02)
        if scheduler.ticks != seen:
            seen, still_since = scheduler.ticks, time.monotonic()
    assert 1 <= scheduler.ticks <= 3
    try:
        yield scheduler, clock
    finally:
        stopped_at = time.monotonic()
        stop.set()
        thread.join(5)
        assert not thread.is_alive() and time.monotonic() - stopped_at < 1.0  # a stop ends the sleep too


def fired_within(world: World, trigger_id: str, seconds: float) -> bool:
    """Whether the trigger fired and started its run within ``seconds``."""
    deadline = time.monotonic() + seconds

    def started() -> bool:
        return bool(world.fired(trigger_id)) and any(i["data"]["trigger_id"] == trigger_id for i in world.instances())

    while time.monotonic() < deadline:
        if started():
            return True
        time.sleep(0.02)
    return started()


def test_a_trigger_created_in_the_same_process_wakes_the_scheduler(world: World,
                                                                   sleeping: tuple[Scheduler, Clock]) -> None:
    trigger_id = world.scheduled()  # through the scheduler's own store: its append wakes it at once
    assert fired_within(world, trigger_id, 1.0)


def test_a_trigger_created_by_another_process_wakes_it_within_the_poll_interval(
        world: World, sleeping: tuple[Scheduler, Clock]) -> None:
    other = world.replica().store  # another process: its appends signal nothing in the scheduler's store
    created = EntityService(other, world.container).create("trigger", {"data": {
        "name": "t_other", "trigger_type_name": "scheduled", "state": "ACTIVE",
        "args": {"cron_pattern": MONDAY_NOON}, "workflow_ids": [world.workflow_id]}}, ADMIN)
    assert fired_within(world, created["id"], 1.0)
