"""The cron scheduler (design.md §4): fires ACTIVE ``scheduled`` triggers at the times of their cron_pattern
(services/domain/cron.py: AWS 6-field or standard 5-field, UTC).

**One fire per (trigger, scheduled time), whatever the number of replicas.** A fire's cause is
``uuid5(SCHEDULE_NAMESPACE, "<trigger id>@<scheduled time, ISO 8601 UTC>")``, and ``fire_trigger`` derives
the ``TriggerFired`` event id from it and does nothing when that event exists. Two replicas (or a restart, or
the same replica ticking twice) that decide to fire the same time write one ``TriggerFired`` and start one
instance per workflow: the store keeps an event id once, and a fire that loses a version race re-reads and
finds the fire already there. Under an exact race both replicas' ``tick`` may list the trigger, but the
store holds one fire.

**Catch-up and overlap policies** (``args.catchup_policy``, ``args.overlap_policy``: the rules are in
services/domain/schedules.py). Each tick considers, per trigger, the times ``due_times`` gives: the latest
(``latest``, the default: after downtime spanning several scheduled times the most recent one fires, late, and
the older ones are skipped for good), none that came before this scheduler started (``none``), or every
missed time of the catch-up window (``all``), oldest first. A time already fired is not fired again. A fire
that meets its workflow's concurrency is skipped, buffered until a run ends (``start_waiting`` each tick; a
run's end wakes the scheduler while a fire waits) or started anyway.

**Armed time: a time before the trigger was armed never fires.** A trigger is armed by the latest event that
made it ACTIVE, changed its args (its cron_pattern) or unpaused it: its ``TriggerCreated`` when created ACTIVE,
a ``TriggerUpdated`` whose changes hold ``state`` or ``args``, or a ``TriggerUnpaused`` (at the time it names).
``t`` fires only when ``t >= armed``, so a trigger created (or re-activated, re-scheduled or unpaused) at 15:00
for a daily 12:00 first fires tomorrow, and the times missed while it was INACTIVE or paused never fire. A
paused trigger does not fire at all. The arming event is found by a bounded read: the last
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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.commands.context import Orchestration
from services.commands.retry import StillConflicting, retry_on_conflict
from services.commands.schedule_buffer import start_waiting
from services.commands.triggers import fire_trigger
from services.domain import schedules, trigger_rules
from services.domain.cron import CronError, CronSchedule, parse_cron, validate_cron_args

log = logging.getLogger("dart.scheduler")

SCHEDULE_NAMESPACE = uuid.UUID("5c3b0f0e-7d1a-5a52-9a47-6b2f1d0c8e31")
STREAM_WINDOW = 50
RETRIES = 10
MIN_SLEEP = 0.05  # never spin: a sleep is at least this long
# What wakes a sleeping scheduler: trigger changes; and, while a buffered fire waits, a run's end.
TRIGGER_CHANGES = ("TriggerCreated", "TriggerUpdated", "TriggerDeleted", "TriggerPaused", "TriggerUnpaused",
                   "TriggerFireBuffered")
INSTANCE_ENDS = ("WorkflowInstanceCompleted", "WorkflowInstanceFailed", "WorkflowInstanceCancelled")

__all__ = ["SCHEDULE_NAMESPACE", "CronError", "Scheduler", "fire_cause", "offset_clock", "utcnow", "validate_cron_args"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def fire_cause(trigger_id: str, scheduled: datetime) -> uuid.UUID:
    """The cause of the fire of a trigger at a scheduled time: the same on every replica."""
    return uuid.uuid5(SCHEDULE_NAMESPACE, f"{trigger_id}@{scheduled.astimezone(UTC).isoformat()}")


def fire_scheduled(orch: Orchestration, trigger_id: str, scheduled: datetime, user_id: str = "anonymous",
                   row: Any = None, overlap: str | None = None, backfill: bool = False) -> bool:
    """Fire a scheduled trigger for one scheduled time, keyed by (trigger, time): False when that time fired
    (or was refused) before, or (unless a ``backfill`` asks for it) the trigger is no longer ACTIVE and
    unpaused. ``row``: the trigger as read, re-read when its stream moved on."""
    tries = itertools.count()

    def attempt() -> bool:
        nonlocal row
        if row is None or next(tries):  # the trigger's stream moved (an edit, another replica): read it again
            row = orch.reader.row("trigger", trigger_id)
            if row is None or not (backfill or schedules.firing(row.data)):
                return False
        return fire_trigger(orch, row, fire_cause(trigger_id, scheduled), schedules.fire_key(scheduled),
                            user_id=user_id, overlap=overlap)

    try:
        return retry_on_conflict(attempt, what=f"trigger {trigger_id}", tries=RETRIES)
    except StillConflicting:
        log.warning("scheduled trigger %s is changing too fast to fire", trigger_id)
        return False


def fired_times(orch: Orchestration, trigger_id: str, times: Sequence[datetime]) -> set[datetime]:
    """Which of these scheduled times have a fire (or a refused fire) recorded: one read per 500 times."""
    ids: dict[uuid.UUID, datetime] = {}
    for t in times:
        cause = fire_cause(trigger_id, t)
        ids[trigger_rules.fired_event_id(cause, trigger_id)] = t
        ids[trigger_rules.skipped_fire_id(cause, trigger_id)] = t
    found: set[datetime] = set()
    chunk = list(ids)
    for i in range(0, len(chunk), 1000):
        found.update(ids[e.event_id] for e in orch.store.read_by_ids(chunk[i:i + 1000]))
    return found


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
        self._handled: dict[str, datetime] = {}  # catch-up all: trigger id -> the last due time fired (or found fired)
        self._started: datetime | None = None  # the clock at the first tick (catch-up none: nothing before it)
        self._waiting = False  # a buffered fire waits for a run's end: wake on instances ending too
        self._behind = False  # a catch-up (all) left missed times for the next tick
        self._bad_patterns: set[str] = set()  # logged once each
        self._seen: int | None = None  # the log position up to which trigger changes were looked for
        self.ticks = 0  # ticks run by ``run`` (a test waits for the first)

    # ----------------------------------------------------------------------------------------- ticking
    def tick(self) -> list[str]:
        """Fire every ACTIVE scheduled trigger whose latest scheduled time is due; the ids fired."""
        return self._tick()[0]

    def due_time(self, row: Any, now: datetime) -> datetime | None:
        """The latest scheduled time this trigger should fire for at ``now`` (fired already or not), or None."""
        times = self.due_times(row, now)
        return times[-1] if times else None

    def due_times(self, row: Any, now: datetime) -> list[datetime]:
        """The scheduled times this trigger should fire for at ``now``, oldest first (fired already or not)."""
        schedule = self._schedule(row)
        if schedule is None or not schedules.firing(row.data):
            return []
        rule = schedules.policy(row.data.get("args"))
        started = self._started or now
        return schedules.due_times(schedule, rule, self.armed_at(row), now, started, self._handled.get(row.id))

    def armed_at(self, row: Any) -> datetime | None:
        """When the trigger was last made ACTIVE, re-scheduled or unpaused (see the module docstring); None
        when the stream says it is not ACTIVE."""
        cached = self._armed.get(row.id)
        if cached is not None and cached[0] == row.version:
            return cached[1]
        events = self.orch.store.read_stream(f"trigger-{row.id}", max(1, row.version - STREAM_WINDOW + 1),
                                             row.version)
        armed = schedules.armed_at([(e.type, e.data, e.recorded_at) for e in events],
                                   events[0].recorded_at if events else None)
        self._armed[row.id] = (row.version, armed)
        return armed

    def _tick(self) -> tuple[list[str], datetime | None]:
        now = self._now()
        if self._started is None:
            self._started = now
        fired: list[str] = []
        next_times: list[datetime] = []
        rows = self.orch.triggers("scheduled")
        waiting = 0
        for row in rows:
            try:
                if self._consider(row, now):
                    fired.append(row.id)
                if row.data.get("last_buffered"):
                    waiting += start_waiting(self.orch, self.orch.reader.row("trigger", row.id) or row)[1]
                schedule = self._schedule(row)
                following = schedule.next_after(now) if schedule else None
                if following is not None:
                    next_times.append(following)
            except Exception:  # one broken trigger must not stop the others
                log.exception("scheduled trigger %s failed to fire", row.id)
        self._waiting = waiting > 0
        if self._behind:
            self._behind = False
            next_times.append(now)
        for gone in set(self._armed) - {r.id for r in rows}:  # deleted or deactivated: forget
            del self._armed[gone]
            self._handled.pop(gone, None)
        return fired, min(next_times, default=None)

    def _consider(self, row: Any, now: datetime) -> bool:
        """Fire the trigger's due times not fired yet, oldest first, at most MAX_CATCHUP_PER_TICK of them (a
        catch-up of more goes on at the next tick, at once); whether any fired."""
        times = self.due_times(row, now)
        done = fired_times(self.orch, row.id, times) if len(times) > 1 else set()
        any_fired, count = False, 0
        for t in times:
            if t not in done:
                if count == schedules.MAX_CATCHUP_PER_TICK:
                    self._behind = True
                    break
                count += 1
                if fire_scheduled(self.orch, row.id, t, user_id=str(row.data.get("user_id") or "anonymous"),
                                  row=row):
                    any_fired = True
            self._handled[row.id] = t
        else:
            self._behind = self._behind or len(times) >= schedules.MAX_CATCHUP_SCAN
        return any_fired

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
        wakes = (*TRIGGER_CHANGES, *(INSTANCE_ENDS if self._waiting else ()))
        if timeout > 0 and store.wait_for_append(seen, timeout, wakes):
            self._seen = store.head_position()
            return True
        head = store.head_position()
        changed = store.read_all(seen, 1, types=list(wakes))
        self._seen = changed[-1].global_position if changed else max(seen, head)
        return bool(changed)

    def start(self, interval: float = 30.0, poll_interval: float = 0.5) -> tuple[threading.Thread, threading.Event]:
        """Run in a daemon thread; the (thread, stop event) pair that ``services.runtime.composition.Workers`` holds."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop, interval, None, poll_interval), name="dart-scheduler",
                                  daemon=True)
        thread.start()
        return thread, stop
