"""The launcher: gives QUEUED actions of ACTIVE datastores their slots (datastore concurrency) and starts
an engine for each. ``Launcher`` is the slot-taking every launcher shares; ``LocalLauncher`` starts the engine
as a supervised local process (a process that exits without checking in fails its action; a PENDING action
whose launch never happened is put back in the queue after a timeout); ``EcsLauncher``
(services/orchestration/ecs_launcher.py) starts it as an ECS task.

Slot-taking is exact under concurrent launchers: the PENDING moves are appended together with
``DatastoreSlotTaken`` on the datastore's stream at the version read before counting, so two launchers
deciding at once cannot both fill the same free slot; the loser re-reads and decides again."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from events.errors import ConcurrencyError
from events.streams.action import ActionLaunched, ActionPending, ActionRequeued
from events.streams.api_key import ApiKeyRevoked
from events.streams.datastore import DatastoreSlotTaken
from events.types import ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamAppend
from services.auth import create_api_key, new_api_key
from services.orchestration.actions import complete_action
from services.orchestration.context import Orchestration

log = logging.getLogger("dart.launcher")
BUSY = ("PENDING", "RUNNING", "FINISHING")
META = Metadata(actor="launcher")
BUILT_IN = {"no_op_engine": [sys.executable, "-m", "engines.no_op"]}

# (action id, engine name) -> "key:secret", the engine's DART_API_TOKEN, valid for that action only.
TokenFactory = Callable[[str, str], str]
Clock = Callable[[], datetime]


LOCAL_TASK = "local:"  # a local engine's task, as recorded in ecs_task_arn: local:<pid>


def _local_pid(task: Any) -> int | None:
    text = str(task or "")
    if text.startswith(LOCAL_TASK) and text[len(LOCAL_TASK):].isdigit():
        return int(text[len(LOCAL_TASK):])
    return None


def engine_pids(action_id: str) -> list[int]:
    """Processes of this machine whose environment names the action (DART_ACTION_ID): its engine, whichever
    process started it. Empty where /proc cannot be read."""
    needle = f"DART_ACTION_ID={action_id}".encode()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit() and _environ_has(int(entry), needle):
            found.append(int(entry))
    return found


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


def engine_alive(pid: int, action_id: str) -> bool:
    """Whether ``pid`` is still the action's engine: a live process (not a zombie) whose environment, where
    /proc shows it, names the action (a pid reused by another process is not the engine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive, and /proc tells whose
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                return False
    except OSError:
        return not os.path.isdir("/proc")  # gone meanwhile; without /proc, the signal test is all there is
    return _environ_has(pid, f"DART_ACTION_ID={action_id}".encode())


def local_engine_commands(raw: str = "") -> dict[str, list[str]]:
    """Engine name -> command, built-ins plus DART_LOCAL_ENGINES (a JSON object of name -> argv list)."""
    commands = dict(BUILT_IN)
    if raw:
        commands.update(json.loads(raw))
    return commands


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


class LocalLauncher(Launcher):
    """Engines as supervised child processes of this one.

    Each launch records ``local:<pid>`` as the action's task. A process that exits without checking in fails
    its action. After a restart, the engines the previous process started are adopted: found by that pid (or,
    for a launch whose pid was never recorded, by the ``DART_ACTION_ID`` in their environment) and watched
    by the periodic check, which fails the action of any that is gone without checking in."""

    def __init__(self, orch: Orchestration, api_url: str, commands: dict[str, list[str]] | None = None,
                 stale_after: float = 120.0, token_factory: TokenFactory | None = None) -> None:
        super().__init__(orch, api_url, stale_after, token_factory)
        self.commands = commands or local_engine_commands()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.adopted: dict[str, int] = {}  # action id -> pid of an engine a previous process started
        self._adopting = True  # the first check adopts
        self._lock = threading.Lock()

    def launch(self, action: dict[str, Any], datastore: dict[str, Any]) -> None:
        action_id = action["id"]
        command = self.commands.get(str(action.get("engine_name")))
        if command is None:
            if action.get("_token"):
                self.revoke_token(action["_token"])
            complete_action(self.orch, action_id, "FAILED",
                            f"no local command for engine {action.get('engine_name')!r}", None)
            return
        env = {**os.environ, **self.engine_environment(action, datastore)}
        try:
            child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            if action.get("_token"):
                self.revoke_token(action["_token"])  # no engine will use it
            complete_action(self.orch, action_id, "FAILED", f"could not start the engine: {exc}", None)
            return
        with self._lock:
            self.children[action_id] = child
        self._record_launched(action_id, child.pid, action.get("_version"))
        threading.Thread(target=self._supervise, args=(action_id, child), daemon=True,
                         name=f"engine:{action_id}").start()

    def _record_launched(self, action_id: str, pid: int, pending_version: int | None = None) -> None:
        """ActionLaunched with the engine's pid: first at the version its slot was taken at (known, no read),
        then, if the engine was quicker and checked out already, on the fresh version."""
        version = pending_version
        for _ in range(10):
            if version is None:
                row = self.orch.reader.row("action", action_id)
                if row is None or row.data.get("state") not in ("PENDING", "RUNNING"):
                    return
                version = row.version
            try:
                self.orch.store.append(StreamAppend(f"action-{action_id}", version, [NewEvent(
                    ActionLaunched({"ecs_task_arn": f"{LOCAL_TASK}{pid}"}), META)]))
                return
            except ConcurrencyError:
                version = None

    def _supervise(self, action_id: str, child: subprocess.Popen[bytes]) -> None:
        code = child.wait()
        with self._lock:
            self.children.pop(action_id, None)
        row = self.orch.reader.row("action", action_id)
        if row is not None and row.data.get("state") in ("PENDING", "RUNNING"):
            complete_action(self.orch, action_id, "FAILED",
                            f"the engine process exited with code {code} without checking in", None)

    def check(self, now: datetime | None = None) -> None:
        if self._adopting:
            self.adopt()
            self._adopting = False
        self.check_adopted()
        self.requeue_stale(now)

    # ------------------------------------------------------------------------------------- adoption
    def adopt(self) -> list[str]:
        """Watch the engines of PENDING and RUNNING actions that no child of this process runs (a previous
        ``dart up`` started them); fail the actions whose engine is already gone. Returns the adopted ids."""
        adopted = []
        for row in self.orch.rows("action", self.orch_state_in("PENDING", "RUNNING")):
            task = row.data.get("ecs_task_arn")
            with self._lock:
                mine = row.id in self.children
            if mine or (task is not None and not str(task).startswith(LOCAL_TASK) and task != ""):
                continue  # ours already, or an ECS task (another launcher's)
            if task is None and row.data.get("state") == "PENDING":
                pids = engine_pids(row.id)  # started just before the crash, never recorded?
                if pids:
                    self._record_launched(row.id, pids[0])
                    self.adopted[row.id] = pids[0]
                    adopted.append(row.id)
                continue  # no engine: the stale check re-queues it (its launch never happened)
            pid = _local_pid(task)
            if pid is None or not engine_alive(pid, row.id):
                pids = engine_pids(row.id)
                pid = pids[0] if pids else None
            if pid is None:
                self.fail_lost(row.id, "its engine process is gone and never checked in (found when dart "
                                       "started again)")
                continue
            self.adopted[row.id] = pid
            adopted.append(row.id)
        if adopted:
            log.info("watching %d engine(s) started before this process: %s", len(adopted), ", ".join(adopted))
        return adopted

    def check_adopted(self) -> list[str]:
        """Fail the actions whose adopted engine has exited without checking in; returns their ids."""
        failed = []
        for action_id, pid in list(self.adopted.items()):
            if engine_alive(pid, action_id):
                continue
            self.adopted.pop(action_id, None)
            if self.fail_lost(action_id, f"its engine process (pid {pid}) exited without checking in"):
                failed.append(action_id)
        return failed

    def fail_lost(self, action_id: str, message: str) -> bool:
        """FAILED, only while the action is still PENDING or RUNNING: the append is guarded by the version read,
        so an engine checking in at this moment is never failed."""
        from services.orchestration.actions import _complete

        for attempt in range(10):
            row = self.orch.reader.row("action", action_id)
            if row is None or row.data.get("state") not in ("PENDING", "RUNNING"):
                return False
            try:
                _complete(self.orch, action_id, row.version, row.data, "FAILED", message, None, attempt)
            except ConcurrencyError:
                continue
            log.warning("action %s: %s", action_id, message)
            return True
        return False

    def requeue_stale(self, now: datetime | None = None) -> int:
        """PENDING with no task after ``stale_after``: back to QUEUED (its launch never happened)."""
        now = now or self.clock()
        moved = 0
        table_rows = self.orch.rows("action", self.orch_state_is("PENDING"))
        for row in table_rows:
            if row.data.get("ecs_task_arn") is None and row.updated < now - self.stale_after:
                pids = engine_pids(row.id)
                if pids:  # started, but not recorded (a crash between the two): watch it instead
                    self._record_launched(row.id, pids[0])
                    self.adopted[row.id] = pids[0]
                    continue
                try:
                    self.orch.store.append(StreamAppend(f"action-{row.id}", row.version, [NewEvent(
                        ActionRequeued({"state": "QUEUED"}), META)]))
                    moved += 1
                except ConcurrencyError:
                    pass
        return moved

    def orch_state_in(self, *states: str) -> Any:
        from services.entities.reads import TABLES

        return TABLES["action"].c.state.in_(states)

    def orch_state_is(self, state: str) -> Any:
        from services.entities.reads import TABLES

        return TABLES["action"].c.state == state

    def stop(self) -> None:
        super().stop()
        with self._lock:
            children = list(self.children.values())
        for child in children:
            child.terminate()
