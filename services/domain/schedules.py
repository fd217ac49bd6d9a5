"""The rules of scheduled triggers beyond their cron (issue 15 item 5): the overlap policy (what a fire does when
its workflow is at its concurrency), the catch-up policy (which scheduled times fire after the scheduler was
away), pause and unpause (when a trigger is armed), and the scheduled times a backfill runs.

**Overlap** (Temporal's schedule policies, read against the workflow's ``concurrency``): ``skip`` (the default
and the original's behaviour) records ``TriggerFireSkipped``; ``buffer_one`` keeps the fire
(``TriggerFireBuffered``) and starts it as soon as a run of the workflow ends, at most one waiting per trigger
and workflow (a fire finding one waiting is skipped, as Temporal drops it); ``allow_all`` starts the run
beyond the concurrency.

**Catch-up** after the scheduler was away (down, or late): ``latest`` (the default) fires the most recent missed
time only; ``none`` fires no time that came before the scheduler (re)started; ``all`` fires every missed
time no older than ``catchup_window_seconds`` (default one day), oldest first. In every policy a time before
the trigger was armed (created ACTIVE, activated, re-scheduled or unpaused) never fires, so an unpause
resumes at the next time and never fires the ones missed while paused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.domain.cron import CronSchedule
from services.domain.errors import BadRequest

OVERLAP_POLICIES = ("skip", "buffer_one", "allow_all")
CATCHUP_POLICIES = ("latest", "none", "all")
DEFAULT_CATCHUP_WINDOW = 86_400
MAX_CATCHUP_WINDOW = 31_536_000  # a year, Temporal's default window
MAX_CATCHUP_PER_TICK = 100  # a tick fires at most this many missed times; the next tick goes on
MAX_CATCHUP_SCAN = 1000  # and looks at most at this many (fired already or not) to find them
MAX_BACKFILL_TIMES = 1000  # the times one backfill request may run (a request that would run more is a 400)
MAX_REASON_CHARS = 1000
SCHEDULED_KEY = "scheduled:"  # a scheduled fire's key: "scheduled:<time, ISO 8601 UTC>"


@dataclass(frozen=True)
class Policy:
    overlap: str = "skip"
    catchup: str = "latest"
    window: timedelta = timedelta(seconds=DEFAULT_CATCHUP_WINDOW)


def policy(args: Mapping[str, Any] | None) -> Policy:
    """A scheduled trigger's policies from its args (validated by its params schema when stored)."""
    args = args or {}
    overlap = args.get("overlap_policy") or "skip"
    catchup = args.get("catchup_policy") or "latest"
    window = args.get("catchup_window_seconds") or DEFAULT_CATCHUP_WINDOW
    return Policy(overlap if overlap in OVERLAP_POLICIES else "skip",
                  catchup if catchup in CATCHUP_POLICIES else "latest", timedelta(seconds=int(window)))


def utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def fire_key(scheduled: datetime) -> str:
    return f"{SCHEDULED_KEY}{utc(scheduled).isoformat()}"


def scheduled_time_of(key: str | None) -> str | None:
    """The scheduled time (ISO 8601 UTC) a fire's key names, or None for a fire that is not a schedule's."""
    if key and key.startswith(SCHEDULED_KEY):
        return key[len(SCHEDULED_KEY):]
    return None


# ------------------------------------------------------------------------------------------------ catch-up
def due_times(schedule: CronSchedule, rule: Policy, armed: datetime | None, now: datetime,
              started: datetime, after: datetime | None = None, limit: int = MAX_CATCHUP_SCAN) -> list[datetime]:
    """The scheduled times to fire at ``now``, oldest first, fired already or not: none before ``armed`` (None:
    not armed, nothing fires); for ``none`` none before the scheduler ``started``; for ``all`` every time in the
    window after ``after`` (the last time this scheduler already handled, to save enumerating it again), at most
    ``limit`` of them."""
    if armed is None:
        return []
    latest = schedule.prev_at_or_before(now)
    if latest is None or latest < armed:
        return []
    if rule.catchup == "latest":
        return [latest]
    if rule.catchup == "none":
        return [latest] if latest >= started else []
    floor = max(armed, now - rule.window)
    times: list[datetime] = []
    cursor = after if after is not None and after >= floor else None
    t = schedule.next_after(cursor) if cursor is not None else schedule.prev_at_or_before(floor)
    if t is not None and t < floor:
        t = schedule.next_after(t)
    while t is not None and t <= now and len(times) < limit:
        times.append(t)
        t = schedule.next_after(t)
    return times


# -------------------------------------------------------------------------------------------------- arming
def armed_at(events: Iterable[tuple[str, Mapping[str, Any], datetime]], first: datetime | None) -> datetime | None:
    """When a trigger was last armed, from its newest events (type, data, recorded_at), newest last: its
    creation ACTIVE, an update of its state or args (re-activated, re-scheduled), or an unpause (at the time it
    names, the clock of the operator's dart). None when the newest such event left it not ACTIVE. ``first``:
    the time of the oldest event given, used when none of them arms or disarms (armed before the window)."""
    for kind, data, recorded_at in reversed(list(events)):
        if kind == "TriggerCreated":
            return recorded_at if (data.get("data") or {}).get("state") == "ACTIVE" else None
        if kind == "TriggerUpdated":
            changes = data.get("changes") or {}
            if "state" in changes or "args" in changes:
                return recorded_at if changes.get("state", "ACTIVE") == "ACTIVE" else None
        if kind == "TriggerUnpaused":
            at = data.get("at")
            return utc(datetime.fromisoformat(at)) if isinstance(at, str) and at else recorded_at
        if kind == "TriggerDeleted":
            return None
    return first


def firing(trigger: Mapping[str, Any]) -> bool:
    """Whether the scheduler fires this trigger: ACTIVE and not paused."""
    return trigger.get("state") == "ACTIVE" and not trigger.get("paused")


# ------------------------------------------------------------------------------------------------- overlap
def overlap_outcome(rule: str, at_concurrency: bool, buffered_waiting: bool) -> str:
    """What a fire does for one workflow: ``start``; ``buffer`` (wait for a run to end); ``skip``."""
    if not at_concurrency or rule == "allow_all":
        return "start"
    if rule == "buffer_one" and not buffered_waiting:
        return "buffer"
    return "skip"


# ------------------------------------------------------------------------------------------------ backfill
def parse_time(value: Any, field: str) -> datetime:
    """An ISO 8601 time with an offset (or Z) from a request; a 400 naming ``field`` otherwise."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field}: an ISO 8601 time with an offset is required, e.g. 2026-11-01T00:00:00Z")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{field}: {value[:60]!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise BadRequest(f"{field}: {value[:60]!r} has no offset (write Z for UTC)")
    return t.astimezone(UTC)


def backfill_times(schedule: CronSchedule, start: datetime, end: datetime, now: datetime,
                   limit: int = MAX_BACKFILL_TIMES) -> list[datetime]:
    """The scheduled times from ``start`` to ``end``, both included; a 400 naming ``end`` when the range is
    backwards, reaches past ``now`` or holds more than ``limit`` times."""
    if end < start:
        raise BadRequest("end: before start")
    if end > now:
        raise BadRequest(f"end: {end.isoformat()} is in the future (now is {now.isoformat()}): a backfill runs "
                         "times that have passed; the schedule runs the others")
    times: list[datetime] = []
    t = schedule.prev_at_or_before(start)
    t = t if t is not None and t >= start else schedule.next_after(start)
    while t is not None and t <= end:
        if len(times) == limit:
            raise BadRequest(f"end: the range holds more than {limit} scheduled times; backfill it in parts")
        times.append(t)
        t = schedule.next_after(t)
    return times


def reason_of(body: Any) -> str:
    """The reason a pause or unpause request gives; a 400 naming ``reason`` otherwise."""
    if not isinstance(body, dict) or not isinstance(body.get("reason"), str) or not body["reason"].strip():
        raise BadRequest("reason: a non-empty string is required (why the schedule is paused or resumed)")
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field of this request (reason)")
    if "\x00" in body["reason"]:
        raise BadRequest("reason: contains a NUL character")
    if len(body["reason"]) > MAX_REASON_CHARS:
        raise BadRequest(f"reason: longer than {MAX_REASON_CHARS} characters")
    return str(body["reason"]).strip()


@dataclass(frozen=True)
class BackfillRequest:
    start: datetime
    end: datetime
    dry_run: bool
    overlap: str | None  # None: the trigger's own overlap policy


def backfill_request(body: Any) -> BackfillRequest:
    """``{start, end, dry_run, overlap_policy}`` from a request; a 400 naming the field otherwise."""
    if not isinstance(body, dict):
        raise BadRequest("body: a JSON object {start, end, dry_run} is required")
    unknown = sorted(set(body) - {"start", "end", "dry_run", "overlap_policy"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field of this request (start, end, dry_run, overlap_policy)")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest("dry_run: true or false")
    overlap = body.get("overlap_policy")
    if overlap is not None and overlap not in OVERLAP_POLICIES:
        raise BadRequest(f"overlap_policy: one of {', '.join(OVERLAP_POLICIES)}")
    return BackfillRequest(parse_time(body.get("start"), "start"), parse_time(body.get("end"), "end"), dry_run,
                           overlap)
