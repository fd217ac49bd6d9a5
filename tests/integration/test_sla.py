"""A workflow's sla_seconds (issue 15) on the launcher's tick: an instance live past it is recorded late once,
whatever the number of ticks, launchers or restarts (the event's id is the instance's), and never before its
time or after it ended."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.commands.scheduler import fire_scheduled
from services.commands.sla import note_if_late
from services.domain.sla import sla_missed
from tests.support.world import SUCCEEDS, World

SCHEDULED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(db_url: str, make_world: Callable[..., World]) -> World:
    return make_world(db_url, World)


def test_an_instance_past_its_sla_is_recorded_late_once(world: World) -> None:
    flow = world.workflow(world.datastore(), [{"name": "a0", "action_type_name": SUCCEEDS}])
    world.update("workflow", flow, sla_seconds=60)
    trigger_id = world.trigger("scheduled", {"cron_pattern": "0 12 * * ? *"}, [flow])
    assert fire_scheduled(world.orch, trigger_id, SCHEDULED)
    [instance] = world.service.reader.find_by("workflow_instance", workflow_id=flow)
    queued = datetime.fromisoformat(instance["data"]["queued_time"])
    workflow = world.service.reader.row("workflow", flow).data

    def row():  # the instance as the launcher's tick reads it
        return world.orch.reader.row("workflow_instance", instance["id"])

    stale = row()
    assert not note_if_late(world.orch, row(), workflow, queued + timedelta(seconds=59))
    assert note_if_late(world.orch, row(), workflow, queued + timedelta(seconds=60))
    assert not note_if_late(world.orch, row(), workflow, queued + timedelta(seconds=61))  # recorded: not again
    note_if_late(world.orch, stale, workflow, queued + timedelta(seconds=62))  # another launcher's older read
    late = [e for e in world.store.read_stream(f"workflow_instance-{instance['id']}")
            if e.type == "WorkflowInstanceLate"]
    assert [(e.data["sla_seconds"], e.data["late_time"]) for e in late] == [
        (60, (queued + timedelta(seconds=60)).isoformat())]
    assert row().data["sla_missed_time"] == late[0].data["late_time"]


def test_no_sla_no_time_yet_or_an_ended_run_is_not_late() -> None:
    now = datetime(2026, 12, 6, 13, 0, tzinfo=UTC)
    live = {"state": "RUNNING", "queued_time": "2026-12-06T12:00:00+00:00"}
    assert sla_missed(live, {"sla_seconds": 3600}, now) == 3600
    assert sla_missed(live, {"sla_seconds": 3601}, now) is None
    assert sla_missed(live, {}, now) is None and sla_missed(live, None, now) is None
    assert sla_missed({**live, "state": "COMPLETED"}, {"sla_seconds": 60}, now) is None
    assert sla_missed({**live, "sla_missed_time": "2026-12-06T12:01:00+00:00"}, {"sla_seconds": 60}, now) is None
