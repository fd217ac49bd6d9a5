"""Moving actions along, on SQLite and PostgreSQL, by calling the orchestration steps directly (no worker
threads, nothing waits on the clock): a completion queues the next action in its own append, a completion
that writes to the datastore's stream leaves that to the TRY_NEXT_ACTION after it, and decisions read only a
datastore's live actions however long its history."""

from __future__ import annotations

import uuid
from typing import Any

from services.commands.actions import complete_action, try_next_actions
from services.commands.context import Orchestration
from services.commands.runs import Fire, start_instance
from tests.support.world import SUCCEEDS, World


# ``world`` is conftest's: dart with the no_op engine, on SQLite and PostgreSQL.
def _workflow(world: World, actions: list[dict[str, Any]]) -> str:
    return world.workflow(world.datastore(state="TEMPLATE"), actions)


def _run(orch: Orchestration, workflow_id: str) -> tuple[str, list[dict[str, Any]]]:
    """Start an instance and queue its first action, as the orchestrator does; (datastore id, its actions)."""
    started = start_instance(orch, workflow_id, Fire("manual", cause=uuid.uuid4()))
    instance = orch.reader.row("workflow_instance", started.instance_id)
    datastore_id = str(instance.data["datastore_id"])
    try_next_actions(orch, datastore_id, uuid.uuid4())
    actions = sorted(orch.actions_of_instance(instance.id), key=lambda a: float(a.get("order_idx") or 0))
    return datastore_id, actions


def _state(orch: Orchestration, action_id: str) -> str:
    return str(orch.reader.row("action", action_id).data["state"])


def test_a_completion_queues_the_next_action_in_its_own_append(world: World) -> None:
    container, orch = world.container, world.orch
    flow = _workflow(world, [{"name": f"a{i}", "action_type_name": SUCCEEDS} for i in range(3)])
    _, (first, second, third) = _run(orch, flow)
    assert _state(orch, first["id"]) == "QUEUED"
    head = container.store.head_position()

    assert complete_action(orch, first["id"], "COMPLETED", None, uuid.uuid4(), queue_next=True)
    appended = container.store.read_all(head)
    completed = next(e for e in appended if e.type == "ActionCompleted")
    queued = next(e for e in appended if e.type == "ActionQueued")
    assert queued.entity_id == second["id"] and _state(orch, second["id"]) == "QUEUED"
    assert completed.metadata["causation_id"] == queued.metadata["causation_id"]  # one decision, one append
    assert _state(orch, third["id"]) == "HAS_NEVER_RUN"
    assert orch.take_next_decided(first["id"]) and not orch.take_next_decided(first["id"])
    assert try_next_actions(orch, str(first["datastore_id"])) == []  # nothing left for the follow-up


def test_a_completion_that_deactivates_the_datastore_leaves_queueing_to_the_next_decision(
        world: World) -> None:
    """An ad-hoc action failing with DEACTIVATE writes to its datastore's stream, as the queueing of the next
    ad-hoc action would: the completion does not queue it, the TRY_NEXT_ACTION after it does."""
    orch = world.orch
    datastore_id = world.datastore()
    failing, waiting = world.actions(("datastore", datastore_id), [
        {"name": "fails", "action_type_name": "fake_action_that_fails"},
        {"name": "waits", "action_type_name": SUCCEEDS}])
    assert try_next_actions(orch, datastore_id, uuid.uuid4()) == [failing]
    assert complete_action(orch, failing, "FAILED", "boom", uuid.uuid4(), queue_next=True)
    assert orch.reader.row("datastore", datastore_id).data["state"] == "INACTIVE"
    assert _state(orch, waiting) == "HAS_NEVER_RUN" and not orch.take_next_decided(failing)
    assert try_next_actions(orch, datastore_id, uuid.uuid4()) == [waiting]


def test_decisions_read_only_the_live_actions_of_a_datastore(world: World) -> None:
    orch = world.orch
    flow = _workflow(world, [{"name": "only", "action_type_name": SUCCEEDS}])
    datastore_id = None
    for _ in range(5):
        datastore_id, (action,) = _run(orch, flow)
        complete_action(orch, action["id"], "COMPLETED", None, uuid.uuid4(), queue_next=True)
    assert datastore_id is not None
    assert orch.actions_of_datastore(datastore_id) == []  # five finished runs: nothing live to decide on
    datastore_id, (action,) = _run(orch, flow)
    assert [a["id"] for a in orch.actions_of_datastore(datastore_id)] == [action["id"]]


def test_with_a_launcher_beside_it_the_queueing_takes_the_slot_and_launches_once(world: World) -> None:
    """The embedded mode (issue 16): the orchestrator's queueing append also takes the slots it leaves free
    (DatastoreSlotTaken, ActionPending, the engine's token) and hands the actions to the launcher of its
    process, once; the launcher's own slot-taking then finds nothing left to take."""
    from services.commands.launcher import Launcher

    class Recording(Launcher):
        def __init__(self, orch: Orchestration) -> None:
            super().__init__(orch, "http://127.0.0.1:9/api/1")
            self.launched: list[dict[str, Any]] = []

        def launch(self, action: dict[str, Any], datastore: dict[str, Any]) -> None:
            self.launched.append(action)

    container, orch = world.container, world.orch
    launcher = Recording(orch)
    orch.launcher = launcher
    flow = _workflow(world, [{"name": f"a{i}", "action_type_name": SUCCEEDS} for i in range(2)])
    datastore_id, (first, second) = _run(orch, flow)
    assert [a["id"] for a in launcher.launched] == [first["id"]] and _state(orch, first["id"]) == "PENDING"

    head = container.store.head_position()
    assert complete_action(orch, first["id"], "COMPLETED", None, uuid.uuid4(), queue_next=True)
    appended = container.store.read_all(head)
    causes = {e.metadata.get("causation_id") for e in appended if e.type != "ApiKeyCreated"}
    assert len(causes) == 1 and None not in causes  # one decision, one append
    assert [e.type for e in appended if e.entity_id == second["id"]] == ["ActionQueued", "ActionPending"]
    assert [e.data["note"] for e in appended if e.type == "DatastoreSlotTaken"] == [
        {"queued": [second["id"]]}, {"pending": [second["id"]]}]
    [launched] = launcher.launched[1:]
    row = orch.reader.row("action", second["id"])
    assert launched["id"] == second["id"] and row.data["state"] == "PENDING"
    assert launched["_version"] == row.version  # what ActionLaunched is guarded by
    key = launched["_token"].split(":", 1)[0]
    assert orch.reader.row("api_key", key).data["scope"] == f"action:{second['id']}"

    assert launcher.launch_ready(datastore_id) == [] and len(launcher.launched) == 2  # nothing launched twice
