"""The launcher: gives QUEUED actions of ACTIVE datastores their slots (datastore concurrency) and starts
an engine for each (the free-slot rule is services/domain/slots.py). ``Launcher`` is the slot-taking every launcher shares; ``LocalLauncher``
(services/adapters/local_engines.py) starts the engine as a supervised local process, ``EcsLauncher``
(services/adapters/ecs_launcher.py) as an ECS task.

Slot-taking is exact under concurrent launchers: the PENDING moves are appended together with
``DatastoreSlotTaken`` on the datastore's stream at the version read before counting, so two launchers
deciding at once cannot both fill the same free slot; the loser re-reads and decides again."""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from events.streams.api_key import ApiKeyRevoked
from events.types import ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamAppend
from projections.reads import TABLES
from services.commands import tracing
from services.commands.actions import complete_read
from services.commands.auth import create_api_key
from services.commands.context import Orchestration, json_field
from services.commands.launch_intent import launch_intent
from services.commands.retry import StillConflicting, retry_on_conflict
from services.commands.run_limits import RetryTimer, RunLimits
from services.commands.schedules import scheduled_time_environment
from services.commands.tracing import handling, launching
from services.domain import slots
from services.domain.slots import BUSY

__all__ = ["BUSY", "META", "Clock", "Launcher", "TokenFactory", "utc_now"]

log = logging.getLogger("dart.launcher")
META = Metadata(actor="launcher")

# (action id, engine name) -> "key:secret", the engine's DART_API_TOKEN, valid for that action only.
TokenFactory = Callable[[str, str], str]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# An action's end (its token's work is over; a check-in revokes its token in its own append) and its requeue
# (the engine never started; the next launch mints another token).
TOKEN_ENDS = frozenset({"ActionCompleted", "ActionCancelled", "ActionDeleted", "ActionRequeued"})


def revoke_action_tokens(orch: Orchestration, action_id: str, until: datetime, cause: uuid.UUID) -> list[str]:
    """Revoke the launch tokens of an action minted up to ``until`` (the time of the event that ended their
    use: a later token belongs to a later launch). The API already refuses a token whose action is no longer
    PENDING or RUNNING (services/api/middleware.py); this takes the key itself out of service, once per cause."""
    table = TABLES["api_key"]
    keys = [row.id for row in orch.rows("api_key", json_field(table, "scope") == f"action:{action_id}")
            if row.created <= until]
    if keys:
        orch.store.append(*(StreamAppend(f"api_key-{key}", ExpectedVersion.ANY, [NewEvent(
            ApiKeyRevoked(), META, uuid.uuid5(cause, f"revoke:{key}"))]) for key in keys))
    return keys


class Launcher:
    """Datastore concurrency and the consumer around it; subclasses say how an engine is started."""

    name = "launcher"
    types: ClassVar[list[str]] = ["ActionQueued", "ActionCompleted", "ActionCancelled", "ActionRequeued",
                                  "ActionDeleted", "ActionCreated", "DatastoreCreated", "DatastoreUpdated"]

    def __init__(self, orch: Orchestration, api_url: str, stale_after: float = 120.0,
                 token_factory: TokenFactory | None = None, clock: Clock | None = None) -> None:
        self.orch = orch
        self.api_url = api_url
        self.stale_after = timedelta(seconds=stale_after)
        self.mints_keys = token_factory is None  # tokens are real API keys in the store (revocable)
        self.token_factory = token_factory or self._create_token
        self.clock = clock or utc_now
        self._periodic: list[tuple[threading.Thread, threading.Event]] = []
        self.retry_timer = RetryTimer(orch)
        self.limits = RunLimits(orch, self.fail_if, self.stop_engine)

    # ------------------------------------------------------------------------------------- consumer
    def handle(self, events: Sequence[RecordedEvent]) -> None:
        datastores: dict[str, RecordedEvent] = {}  # -> the first event that led to it
        for event in events:
            with handling(self.name, event):
                datastore_id = self._datastore_to_try(event)
            if datastore_id and datastore_id not in datastores:
                datastores[datastore_id] = event
        for datastore_id, event in datastores.items():
            if self.may_launch_on(datastore_id):
                with handling(self.name, event, "slots"):
                    self.launch_ready(datastore_id)

    def _datastore_to_try(self, event: RecordedEvent) -> str | None:
        if event.type == "ActionCreated":  # only a retry's next attempt matters here: when it is due
            self.retry_timer.note(event)
            return None
        if event.type == "ActionCancelled":
            self._stop_cancelled(event)
        if event.type in TOKEN_ENDS:
            revoke_action_tokens(self.orch, event.entity_id, event.recorded_at, event.event_id)
        if event.category == "datastore":
            return event.entity_id
        row = self.orch.reader.row("action", event.entity_id)
        return row.data.get("datastore_id") if row is not None else None

    def may_launch_on(self, datastore_id: str) -> bool:
        """False while launches on this datastore are held back (e.g. ECS had no capacity a moment ago)."""
        return True

    # ---------------------------------------------------------------------------------- slot-taking
    def take_slots(self, datastore_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Move as many QUEUED actions of an ACTIVE datastore to PENDING as its concurrency leaves room for,
        oldest first, in one append guarded by the datastore's version (the launch intent). Returns the
        actions now PENDING (with their PENDING version in ``_version``) and the datastore's data."""

        def attempt() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            datastore = self.orch.reader.row("datastore", datastore_id)
            if datastore is None or datastore.data.get("state") != "ACTIVE":
                return [], {}
            taken = slots.slots_to_take(datastore.data, self.orch.actions_of_datastore(datastore_id))
            if not taken:
                return [], datastore.data
            appends, pending = launch_intent(datastore_id, datastore.version, taken, META, self.mints_keys)
            self.orch.store.append(*appends)
            return pending, datastore.data

        try:
            return retry_on_conflict(attempt, what=f"datastore {datastore_id}")
        except StillConflicting:
            return [], {}

    def launch_ready(self, datastore_id: str) -> list[str]:
        """Take the free slots of a datastore and launch an engine for each; returns the action ids."""
        pending, datastore = self.take_slots(datastore_id)
        self.launch_taken(pending, datastore)
        return [a["id"] for a in pending]

    def launch_taken(self, pending: list[dict[str, Any]], datastore: dict[str, Any]) -> None:
        """Start an engine for each action whose slot was just taken (here, or by the queueing's own append)."""
        for action in pending:
            try:
                with launching(self.orch.store, action):  # in the action's run: its trace, its correlation
                    self.launch(action, datastore)
            except Exception:
                # The intent is recorded: the stale-PENDING check re-queues or fails the action later.
                log.exception("launching action %s failed", action["id"])

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
            **scheduled_time_environment(self.orch, action),  # DART_SCHEDULED_TIME for a schedule's run
            **tracing.engine_environment(),  # TRACEPARENT and DART_CORRELATION_ID of the action's run
        }

    def _actions_in(self, *states: str) -> list[Any]:
        return self.orch.rows("action", TABLES["action"].c.state.in_(states))

    def fail_if(self, action_id: str, states: Iterable[str], message: str, arn: str | None = None) -> bool:
        """COMPLETE_ACTION FAILED, but only while the action is in one of ``states`` (and, given ``arn``,
        still has that task): the append is guarded by the version at which that was read, so an engine that
        checks in at the same moment is never failed."""
        wanted = tuple(states)
        tries = itertools.count()

        def attempt() -> bool:
            number = next(tries)
            row = self.orch.reader.row("action", action_id)
            if row is None or row.data.get("state") not in wanted:
                return False
            if arn is not None and row.data.get("ecs_task_arn") != arn:
                return False
            complete_read(self.orch, row, "FAILED", message, None, number)
            return True

        try:
            return retry_on_conflict(attempt, what=f"action {action_id}")
        except StillConflicting:
            return False

    # ------------------------------------------------------------------------------------ stopping
    def stop_engine(self, action_id: str, task: Any, reason: str) -> bool:
        """Stop the engine running the action (its task as recorded), if one runs; True if one was told to."""
        return False

    def _stop_cancelled(self, event: RecordedEvent) -> None:
        row = self.orch.reader.row("action", event.entity_id)
        task = row.data.get("ecs_task_arn") if row is not None else None
        if task is not None:
            reason = str((event.data.get("changes") or {}).get("error_message") or "cancelled")
            try:
                self.stop_engine(event.entity_id, task, reason)
            except Exception:
                log.exception("could not stop the engine of cancelled action %s", event.entity_id)

    def run_limits(self, now: datetime | None = None) -> None:
        """Timeouts and instance bounds, and the retries now due (issue 15): part of every periodic check."""
        now = now or self.clock()
        self.limits.enforce(now)
        self.retry_timer.release(now)

    # ------------------------------------------------------------------------------------ periodic
    def check(self, now: datetime | None = None) -> None:
        """The periodic work (stale PENDING, lost tasks, run limits); run by ``run_periodic``."""
        self.run_limits(now)

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
