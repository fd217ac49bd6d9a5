"""A cancel racing an engine's check-in and its completion (issue 15), on both stores: real concurrent writers
(two threads released together, each with its own reads and appends), 50 times over. Every time exactly one
outcome: the run COMPLETED and the cancel refused naming that state, or the run cancelled (action and instance
FAILED "cancelled by ...") and the check-in refused or its completion a no-op; never a mix."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from services.commands.actions import complete_action, try_next_actions
from services.commands.auth import Principal
from services.commands.cancel import cancel_instance
from services.commands.engine_protocol import ActionResult, check_in, check_out
from services.commands.launcher import Launcher
from services.commands.triggers import fire_manual
from services.domain.errors import DartError
from tests.support.world import ADMIN, NO_OP, SUCCEEDS, World

ROUNDS = 50


def _running(world: World, datastore_id: str, workflow_id: str) -> tuple[str, str]:
    """Start a run and bring its one action to RUNNING: (instance id, action id)."""
    started = fire_manual(world.orch, workflow_id, ADMIN.user_id, uuid.uuid4())
    assert started.instance_id is not None
    try_next_actions(world.orch, datastore_id)
    [pending], _ = Launcher(world.orch, "http://unused").take_slots(datastore_id)
    check_out(world.service, pending["id"], "engine", None)
    return started.instance_id, pending["id"]


def _race(world: World, instance_id: str, action_id: str) -> dict[str, Exception]:
    """The engine's check-in and completion against an operator's cancel, released together; their errors."""
    gate = threading.Barrier(2)
    errors: dict[str, Exception] = {}

    def engine() -> None:
        gate.wait()
        try:
            check_in(world.service, action_id, ActionResult("SUCCESS"), Principal("k", "engine", "editor"))
            complete_action(world.orch, action_id, "COMPLETED", None, uuid.uuid4())
        except DartError as exc:
            errors["engine"] = exc

    def operator() -> None:
        gate.wait()
        try:
            cancel_instance(world.orch, instance_id, "operator@example.com")
        except DartError as exc:
            errors["cancel"] = exc

    threads = [threading.Thread(target=engine), threading.Thread(target=operator)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_a_cancel_racing_a_check_in_has_exactly_one_outcome(world: World) -> None:
    datastore_id = world.datastore()
    workflow_id = world.workflow(datastore_id, [{"name": "a", "action_type_name": SUCCEEDS, "engine_name": NO_OP}])
    outcomes = {"completed": 0, "cancelled": 0}
    for _ in range(ROUNDS):
        instance_id, action_id = _running(world, datastore_id, workflow_id)
        errors = _race(world, instance_id, action_id)
        instance: dict[str, Any] = world.service.reader.get("workflow_instance", instance_id)["data"]
        action: dict[str, Any] = world.service.reader.get("action", action_id)["data"]
        if instance["state"] == "COMPLETED":
            assert action["state"] == "COMPLETED" and not action.get("error_message")
            assert "is COMPLETED" in str(errors.get("cancel")), errors
            assert not instance.get("cancelled_by")
            outcomes["completed"] += 1
        else:
            assert instance["state"] == "FAILED" and instance["cancelled_by"] == "operator@example.com"
            assert action["state"] == "FAILED"
            assert action["error_message"] == instance["error_message"] == "cancelled by operator@example.com"
            assert "cancel" not in errors  # the cancel won; the engine's check-in was refused or came too late
            outcomes["cancelled"] += 1
    assert sum(outcomes.values()) == ROUNDS
