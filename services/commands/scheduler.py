"""The cron scheduler (design.md §4): fires ACTIVE ``scheduled`` triggers at the times of their cron_pattern
(services/domain/cron.py: AWS 6-field or standard 5-field, UTC).

**One fire per (trigger, scheduled time), whatever the number of replicas.** A fire's cause is
``uuid5(SCHEDULE_NAMESPACE, "<trigger id>@<scheduled time, ISO 8601 UTC>")``, and ``fire_trigger`` derives
the ``TriggerFired`` event id from it and does nothing when that event exists. Two replicas (or a restart, or
the same replica ticking twice) that decide to fire the same time write one ``TriggerFired`` and start one
instance per workflow: the store keeps an event id once, and a fire that loses a version race re-reads and
finds the fire already there. Under an exact race both replicas' ``tick`` may list the trigger, but the
store holds one fire.

**Catch-up policy: only the latest missed time fires, once** (like Airflow's ``catchup=False``). Each tick
considers, per trigger, only ``t = schedule.prev_at_or_before(now)``. After downtime spanning several
scheduled times, the most recent one fires (late) and the older ones are skipped for good; they are not
recorded anywhere. A tick that finds ``t`` already fired does nothing.

**Armed time: a time before the trigger was armed never fires.** A trigger is armed by the latest event that
made it ACTIVE or changed its args (its cron_pattern): its ``TriggerCreated`` when created ACTIVE, or a
``TriggerUpdated`` whose changes hold ``state`` or ``args``. ``t`` fires only when ``t >= armed``, so a
trigger created (or re-activated, or re-scheduled) at 15:00 for a daily 12:00 first fires tomorrow, and
the times missed while it was INACTIVE never fire. The arming event is found by a bounded read: the last
``STREAM_WINDOW`` events of the trigger's stream (cached per trigger version, so a quiet trigger costs no
read per tick). If the window holds no arming event, the trigger has been armed since before the window's
first event, and that event's time is used: a conservative bound that can only skip (never add) a fire,
and only when ``STREAM_WINDOW`` events landed on the trigger's stream between ``t`` and the tick.

Event times come from the store and "now" from the injected clock, so in production both are the wall
clock (UTC); tests inject the clock and the sleeper and never wait.

**Woken by trigger changes.** Between ticks the scheduler sleeps until the next due time or ``interval``
seconds, but a trigger created, changed or deleted wakes it: at once when the change is appended through the
same store (``dart up``), within ``poll_interval`` when another process made it. So a new trigger's first
time is never missed by a sleep begun before the trigger existed.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.commands.context import Orchestration
from services.commands.retry import StillConflicting, retry_on_conflict
from services.commands.triggers import fire_trigger
from services.domain.cron import CronError, CronSchedule, parse_cron, validate_cron_args

log = logging.getLogger("dart.scheduler")

SCHEDULE_NAMESPACE = uuid.UUID("5c3b0f0e-7d1a-5a52-9a47-6b2f1d0c8e31")
STREAM_WINDOW = 50
RETRIES = 10
MIN_SLEEP = 0.05  # never spin: a sleep is at least this long
TRIGGER_CHANGES = ("TriggerCreated", "TriggerUpdated", "TriggerDeleted")  # what wakes a sleeping scheduler

__all__ = ["SCHEDULE_NAMESPACE", "CronError", "Scheduler", "fire_cause", "offset_clock", "utcnow", "validate_cron_args"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def fire_cause(trigger_id: str, scheduled: datetime) -> uuid.UUID:
    """The cause of the fire of a trigger at a scheduled time: the same on every replica."""
    return uuid.uuid5(SCHEDULE_NAMESPACE, f"{trigger_id}@{scheduled.astimezone(UTC).isoformat()}")


def _as_utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def offset_clock(seconds: float) -> Callable[[], datetime]:
    """The wall clock shifted by ``seconds`` (the ``clock_offset_seconds`` setting); the wall clock at 0."""
    if not seconds:
        return utcnow
    shift = timedelta(seconds=seconds)
    return lambda: utcnow() + shift


class Scheduler:
    def __init__(self, orch: Orchestration, clock: Callable[[], datetime] = utcnow) -> None:
        self.orch = orch
        self.clock = clock
        self._armed: dict[str, tuple[int, datetime | None]] = {}  # trigger id -> (version, armed time)
        self._bad_patterns: set[str] = set()  # logged once each
        self._seen: int | None = None  # the log position up to which trigger changes were looked for
        self.ticks = 0  # ticks run by ``run`` (a test waits for the first)

    # ----------------------------------------------------------------------------------------- ticking
    def tick(self) -> list[str]:
        """Fire every ACTIVE scheduled trigger whose latest scheduled time is due; the ids fired."""
        return self._tick()[0]

    def due_time(self, row: Any, now: datetime) -> datetime | None:
        """The scheduled time this trigger should fire for at ``now`` (fired already or not), or None."""
        schedule = self._schedule(row)
        if schedule is None or row.data.get("state") != "ACTIVE":
            return None
        t = schedule.prev_at_or_before(now)
        if t is None:
            return None
        armed = self.armed_at(row)
        if armed is None or t < armed:
            return None
        return t

    def armed_at(self, row: Any) -> datetime | None:
        """When the trigger was last made ACTIVE or re-scheduled (see the module docstring); None when the
        stream says it is not ACTIVE."""
        cached = self._armed.get(row.id)
        if cached is not None and cached[0] == row.version:
            return cached[1]
        events = self.orch.store.read_stream(f"trigger-{row.id}", max(1, row.version - STREAM_WINDOW + 1),
                                             row.version)
        armed: datetime | None = events[0].recorded_at if events else None
        for event in reversed(events):
            if event.type == "TriggerCreated":
                created = event.data.get("data") or {}
                armed = event.recorded_at if created.get("state") == "ACTIVE" else None
                break
            if event.type == "TriggerUpdated":
                changes = event.data.get("changes") or {}
                if "state" in changes or "args" in changes:
                    armed = event.recorded_at if changes.get("state", "ACTIVE") == "ACTIVE" else None
                    break
            if event.type == "TriggerDeleted":
                armed = None
                break
        self._armed[row.id] = (row.version, armed)
        return armed

    def _tick(self) -> tuple[list[str], datetime | None]:
        now = self._now()
        fired: list[str] = []
        next_times: list[datetime] = []
        rows = self.orch.triggers("scheduled")
        for row in rows:
            try:
                if self._consider(row, now):
                    fired.append(row.id)
                schedule = self._schedule(row)
                following = schedule.next_after(now) if schedule else None
                if following is not None:
                    next_times.append(following)
            except Exception:  # one broken trigger must not stop the others
                log.exception("scheduled trigger %s failed to fire", row.id)
        for gone in set(self._armed) - {r.id for r in rows}:  # deleted or deactivated: forget
            del self._armed[gone]
        return fired, min(next_times, default=None)

    def _consider(self, row: Any, now: datetime) -> bool:
        trigger_id = row.id
        tries = itertools.count()

        def attempt() -> bool:
            nonlocal row
            if next(tries):  # the trigger's stream moved (an edit, another replica): decide again on fresh state
                row = self.orch.reader.row("trigger", trigger_id)
                if row is None:
                    return False
            t = self.due_time(row, now)
            if t is None:
                return False
            return fire_trigger(self.orch, row, fire_cause(row.id, t), f"scheduled:{t.isoformat()}",
                                user_id=str(row.data.get("user_id") or "anonymous"))

        try:
            return retry_on_conflict(attempt, what=f"trigger {trigger_id}", tries=RETRIES)
        except StillConflicting:
            log.warning("scheduled trigger %s is changing too fast to fire", trigger_id)
            return False

    def _schedule(self, row: Any) -> CronSchedule | None:
        pattern = (row.data.get("args") or {}).get("cron_pattern")
        try:
            return parse_cron(pattern)
        except CronError as exc:
            if f"{row.id}:{pattern}" not in self._bad_patterns:
                self._bad_patterns.add(f"{row.id}:{pattern}")
                log.error("scheduled trigger %s has an unusable cron_pattern %r: %s", row.id, pattern, exc)
            return None

    def _now(self) -> datetime:
        return _as_utc(self.clock())

    # ----------------------------------------------------------------------------------------- running
    def run(self, stop_event: threading.Event, interval: float = 30.0,
            sleep: Callable[[float], Any] | None = None, poll_interval: float = 0.5) -> None:
        """Tick until ``stop_event`` is set, sleeping until the next due time or ``interval`` seconds,
        whichever is sooner, unless a trigger change wakes it first (``sleep`` defaults to that wait; a stop
        ends it within ``poll_interval``)."""
        sleep = sleep or (lambda delay: self.wait_for_trigger_change(stop_event, delay, poll_interval))
        while not stop_event.is_set():
            next_time: datetime | None = None
            try:
                self.trigger_changed()  # changes up to here are in this tick
                _, next_time = self._tick()
            except Exception:  # the store is down, say: try again after the interval
                log.exception("scheduler tick failed")
            self.ticks += 1
            delay = interval
            if next_time is not None:
                delay = min(interval, (next_time - self._now()).total_seconds())
            sleep(max(MIN_SLEEP, delay))

    def wait_for_trigger_change(self, stop_event: threading.Event, delay: float, poll_interval: float) -> bool:
        """Sleep up to ``delay`` seconds; True as soon as a trigger changed (or on stop)."""
        deadline = time.monotonic() + delay
        while not stop_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.trigger_changed(min(left, poll_interval)):
                return True
        return True

    def trigger_changed(self, timeout: float = 0.0) -> bool:
        """Whether a trigger was created, changed or deleted since the last look: waits up to ``timeout`` for
        an append through this store, then reads the log for other processes' changes."""
        store = self.orch.store
        if self._seen is None:
            self._seen = store.head_position()
        seen = self._seen
        if timeout > 0 and store.wait_for_append(seen, timeout, TRIGGER_CHANGES):
            self._seen = store.head_position()
            return True
        head = store.head_position()
        changed = store.read_all(seen, 1, types=list(TRIGGER_CHANGES))
        self._seen = changed[-1].global_position if changed else max(seen, head)
        return bool(changed)

    def start(self, interval: float = 30.0, poll_interval: float = 0.5) -> tuple[threading.Thread, threading.Event]:
        """Run in a daemon thread; the (thread, stop event) pair that ``services.runtime.composition.Workers`` holds."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop, interval, None, poll_interval), name="dart-scheduler",
                                  daemon=True)
        thread.start()
        return thread, stop
