"""The launcher: gives QUEUED actions of ACTIVE datastores their slots (datastore concurrency) and starts
an engine for each, as a supervised local process. A process that exits without checking in fails its
action; a PENDING action whose launch never happened is put back in the queue after a timeout."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from events.errors import ConcurrencyError
from events.streams.action import ActionLaunched, ActionPending, ActionRequeued
from events.streams.datastore import DatastoreSlotTaken
from events.types import Metadata, NewEvent, RecordedEvent, StreamAppend
from services.auth import create_api_key
from services.orchestration.actions import complete_action
from services.orchestration.context import Orchestration

log = logging.getLogger("dart.launcher")
BUSY = ("PENDING", "RUNNING", "FINISHING")
META = Metadata(actor="launcher")
BUILT_IN = {"no_op_engine": [sys.executable, "-m", "engines.no_op"]}


def local_engine_commands(raw: str = "") -> dict[str, list[str]]:
    """Engine name -> command, built-ins plus DART_LOCAL_ENGINES (a JSON object of name -> argv list)."""
    commands = dict(BUILT_IN)
    if raw:
        commands.update(json.loads(raw))
    return commands


class LocalLauncher:
    name = "launcher"
    types = ["ActionQueued", "ActionCompleted", "ActionRequeued", "DatastoreCreated", "DatastoreUpdated"]

    def __init__(self, orch: Orchestration, api_url: str, commands: dict[str, list[str]] | None = None,
                 stale_after: float = 120.0) -> None:
        self.orch = orch
        self.api_url = api_url
        self.commands = commands or local_engine_commands()
        self.stale_after = timedelta(seconds=stale_after)
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def handle(self, events: Sequence[RecordedEvent]) -> None:
        datastores: list[str] = []
        for event in events:
            if event.category == "datastore":
                datastore_id = event.entity_id
            else:
                row = self.orch.reader.row("action", event.entity_id)
                datastore_id = row.data.get("datastore_id") if row is not None else None
            if datastore_id and datastore_id not in datastores:
                datastores.append(datastore_id)
        for datastore_id in datastores:
            self.launch_ready(datastore_id)

    def launch_ready(self, datastore_id: str) -> None:
        for _ in range(10):
            datastore = self.orch.reader.row("datastore", datastore_id)
            if datastore is None or datastore.data.get("state") != "ACTIVE":
                return
            actions = self.orch.actions_of_datastore(datastore_id)
            free = int(datastore.data.get("concurrency") or 1) - sum(a.get("state") in BUSY for a in actions)
            queued = sorted((a for a in actions if a.get("state") == "QUEUED"),
                            key=lambda a: (a.get("queued_time") or "", float(a.get("order_idx") or 0)))[:max(free, 0)]
            if not queued:
                return
            appends = [StreamAppend(f"datastore-{datastore_id}", datastore.version, [NewEvent(
                DatastoreSlotTaken({"pending": [a["id"] for a in queued]}), META)])]
            appends += [StreamAppend(f"action-{a['id']}", a["_version"], [NewEvent(
                ActionPending({"state": "PENDING"}), META)]) for a in queued]
            try:
                self.orch.store.append(*appends)
            except ConcurrencyError:
                continue
            for action in queued:
                self.launch(action, datastore.data)
            return

    def launch(self, action: dict[str, Any], datastore: dict[str, Any]) -> None:
        action_id = action["id"]
        command = self.commands.get(str(action.get("engine_name")))
        if command is None:
            complete_action(self.orch, action_id, "FAILED",
                            f"no local command for engine {action.get('engine_name')!r}", None)
            return
        key, secret = create_api_key(self.orch.store, f"engine@{action.get('engine_name')}", f"action:{action_id}",
                                     actor="launcher")
        env = {**os.environ, "DART_ACTION_ID": action_id,
               "DART_ACTION_USER_ID": str(datastore.get("user_id") or "anonymous"),
               "DART_API_URL": self.api_url, "DART_API_TOKEN": f"{key}:{secret}"}
        try:
            child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            complete_action(self.orch, action_id, "FAILED", f"could not start the engine: {exc}", None)
            return
        with self._lock:
            self.children[action_id] = child
        row = self.orch.reader.row("action", action_id)
        if row is not None:
            try:
                self.orch.store.append(StreamAppend(f"action-{action_id}", row.version, [NewEvent(
                    ActionLaunched({"ecs_task_arn": ""}), META)]))
            except ConcurrencyError:
                pass  # the engine was quicker and checked out already: the task is recorded by its run
        threading.Thread(target=self._supervise, args=(action_id, child), daemon=True,
                         name=f"engine:{action_id}").start()

    def _supervise(self, action_id: str, child: subprocess.Popen[bytes]) -> None:
        code = child.wait()
        with self._lock:
            self.children.pop(action_id, None)
        row = self.orch.reader.row("action", action_id)
        if row is not None and row.data.get("state") in ("PENDING", "RUNNING"):
            complete_action(self.orch, action_id, "FAILED",
                            f"the engine process exited with code {code} without checking in", None)

    def requeue_stale(self, now: datetime | None = None) -> int:
        """PENDING with no task after ``stale_after``: back to QUEUED (its launch never happened)."""
        now = now or datetime.now(UTC)
        moved = 0
        table_rows = self.orch.rows("action", self.orch_state_is("PENDING"))
        for row in table_rows:
            if row.data.get("ecs_task_arn") is None and row.updated < now - self.stale_after:
                try:
                    self.orch.store.append(StreamAppend(f"action-{row.id}", row.version, [NewEvent(
                        ActionRequeued({"state": "QUEUED"}), META)]))
                    moved += 1
                except ConcurrencyError:
                    pass
        return moved

    def orch_state_is(self, state: str) -> Any:
        from services.entities.reads import TABLES

        return TABLES["action"].c.state == state

    def stop(self) -> None:
        with self._lock:
            children = list(self.children.values())
        for child in children:
            child.terminate()
