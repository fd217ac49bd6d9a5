"""The launcher: gives QUEUED actions of ACTIVE datastores their slots (datastore concurrency) and starts
an engine for each. ``Launcher`` is the slot-taking every launcher shares; ``LocalLauncher``
(services/adapters/local_engines.py) starts the engine as a supervised local process, ``EcsLauncher``
(services/adapters/ecs_launcher.py) as an ECS task.

Slot-taking is exact under concurrent launchers: the PENDING moves are appended together with
``DatastoreSlotTaken`` on the datastore's stream at the version read before counting, so two launchers
deciding at once cannot both fill the same free slot; the loser re-reads and decides again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from events.errors import ConcurrencyError
from events.streams.action import ActionPending
from events.streams.api_key import ApiKeyRevoked
from events.streams.datastore import DatastoreSlotTaken
from events.types import ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamAppend
from projections.reads import TABLES
from services.commands.actions import _complete
from services.commands.auth import create_api_key, new_api_key
from services.commands.context import Orchestration

log = logging.getLogger("dart.launcher")
BUSY = ("PENDING", "RUNNING", "FINISHING")
META = Metadata(actor="launcher")

# (action id, engine name) -> "key:secret", the engine's DART_API_TOKEN, valid for that action only.
TokenFactory = Callable[[str, str], str]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Launcher:
    """Datastore concurrency and the consumer around it; subclasses say how an engine is started."""

    name = "launcher"
    types = ["ActionQueued", "ActionCompleted", "ActionRequeued", "DatastoreCreated", "DatastoreUpdated"]

    def __init__(self, orch: Orchestration, api_url: str, stale_after: float = 120.0,
                 token_factory: TokenFactory | None = None, clock: Clock | None = None) -> None:
        self.orch = orch
        self.api_url = api_url
        self.stale_after = timedelta(seconds=stale_after)
        self.mints_keys = token_factory is None  # tokens are real API keys in the store (revocable)
        self.token_factory = token_factory or self._create_token
        self.clock = clock or utc_now
        self._periodic: list[tuple[threading.Thread, threading.Event]] = []

    # ------------------------------------------------------------------------------------- consumer
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
            if self.may_launch_on(datastore_id):
                self.launch_ready(datastore_id)

    def may_launch_on(self, datastore_id: str) -> bool:
        """False while launches on this datastore are held back (e.g. ECS had no capacity a moment ago)."""
        return True

    # ---------------------------------------------------------------------------------- slot-taking
    def take_slots(self, datastore_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Move as many QUEUED actions of an ACTIVE datastore to PENDING as its concurrency leaves room for,
        oldest first, in one append guarded by the datastore's version (the launch intent). Returns the
        actions now PENDING (with their PENDING version in ``_version``) and the datastore's data."""
        for _ in range(10):
            datastore = self.orch.reader.row("datastore", datastore_id)
            if datastore is None or datastore.data.get("state") != "ACTIVE":
                return [], {}
            actions = self.orch.actions_of_datastore(datastore_id)
            free = int(datastore.data.get("concurrency") or 1) - sum(a.get("state") in BUSY for a in actions)
            queued = sorted((a for a in actions if a.get("state") == "QUEUED"),
                            key=lambda a: (a.get("queued_time") or "", float(a.get("order_idx") or 0)))
            queued = queued[:max(free, 0)]
            if not queued:
                return [], datastore.data
            appends = [StreamAppend(f"datastore-{datastore_id}", datastore.version, [NewEvent(
                DatastoreSlotTaken({"pending": [a["id"] for a in queued]}), META)])]
            appends += [StreamAppend(f"action-{a['id']}", a["_version"], [NewEvent(
                ActionPending({"state": "PENDING"}), META)]) for a in queued]
            tokens: dict[str, str] = {}
            if self.mints_keys:  # each engine's token is created with its launch intent: one write, not two
                for a in queued:
                    append, key, secret = new_api_key(f"engine@{a.get('engine_name')}", f"action:{a['id']}",
                                                      actor="launcher")
                    appends.append(append)
                    tokens[a["id"]] = f"{key}:{secret}"
            try:
                self.orch.store.append(*appends)
            except ConcurrencyError:
                continue
            pending = [{**a, "state": "PENDING", "_version": a["_version"] + 1, "_token": tokens.get(a["id"])}
                       for a in queued]
            return pending, datastore.data
        return [], {}

    def launch_ready(self, datastore_id: str) -> list[str]:
        """Take the free slots of a datastore and launch an engine for each; returns the action ids."""
        pending, datastore = self.take_slots(datastore_id)
        for action in pending:
            try:
                self.launch(action, datastore)
            except Exception:
                # The intent is recorded: the stale-PENDING check re-queues or fails the action later.
                log.exception("launching action %s failed", action["id"])
        return [a["id"] for a in pending]

    def launch(self, action: dict[str, Any], datastore: dict[str, Any]) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------- helpers
    def _create_token(self, action_id: str, engine_name: str) -> str:
        key, secret = create_api_key(self.orch.store, f"engine@{engine_name}", f"action:{action_id}",
                                     actor="launcher")
        return f"{key}:{secret}"

    def revoke_token(self, token: str) -> None:
        """Revoke a launch token no engine will ever use (its task was never started)."""
        if not self.mints_keys:
            return
        key = token.split(":", 1)[0]
        try:
            self.orch.store.append(StreamAppend(f"api_key-{key}", ExpectedVersion.ANY, [NewEvent(
                ApiKeyRevoked(), META)]))
        except Exception:
            log.exception("could not revoke the unused launch key %s", key)

    def engine_environment(self, action: dict[str, Any], datastore: dict[str, Any]) -> dict[str, str]:
        """What an engine learns from its environment (design.md §4), with a fresh action-scoped token."""
        action_id = action["id"]
        return {
            "DART_ACTION_ID": action_id,
            "DART_ACTION_USER_ID": str(datastore.get("user_id") or "anonymous"),
            "DART_API_URL": self.api_url,
            "DART_API_TOKEN": action.get("_token") or self.token_factory(action_id, str(action.get("engine_name"))),
        }

    def _actions_in(self, *states: str) -> list[Any]:
        return self.orch.rows("action", TABLES["action"].c.state.in_(states))

    def fail_if(self, action_id: str, states: Iterable[str], message: str, arn: str | None = None) -> bool:
        """COMPLETE_ACTION FAILED, but only while the action is in one of ``states`` (and, given ``arn``,
        still has that task): the append is guarded by the version at which that was read, so an engine that
        checks in at the same moment is never failed."""
        wanted = tuple(states)
        for attempt in range(10):
            row = self.orch.reader.row("action", action_id)
            if row is None or row.data.get("state") not in wanted:
                return False
            if arn is not None and row.data.get("ecs_task_arn") != arn:
                return False
            try:
                _complete(self.orch, action_id, row.version, row.data, "FAILED", message, None, attempt)
            except ConcurrencyError:
                continue
            return True
        return False

    # ------------------------------------------------------------------------------------ periodic
    def check(self, now: datetime | None = None) -> None:
        """The periodic work (stale PENDING, lost tasks); run by ``run_periodic``."""

    def run_periodic(self, stop: threading.Event, interval: float) -> None:
        """Call ``check`` every ``interval`` seconds until ``stop`` is set; a failing check is logged."""
        while not stop.wait(interval):
            try:
                self.check()
            except Exception:
                log.exception("the launcher's periodic check failed; trying again in %.1f s", interval)

    def start_periodic(self, interval: float) -> tuple[threading.Thread, threading.Event]:
        """``run_periodic`` in a daemon thread; ``stop()`` ends it. Returns (thread, stop event)."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run_periodic, args=(stop, interval), daemon=True,
                                  name=f"{self.name}:periodic")
        thread.start()
        self._periodic.append((thread, stop))
        return thread, stop

    def stop(self) -> None:
        for _, stop in self._periodic:
            stop.set()
