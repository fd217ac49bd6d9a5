"""An operator's control of a schedule (issue 15 item 5): pause and unpause a scheduled trigger, with a reason,
and backfill it over a range of past times. Each is an event with the operator as its actor; a backfill's
fires are keyed by (trigger, scheduled time) as the scheduler's own (services/commands/scheduler.py), so a
time is never fired twice, whoever fired it first. Also what an engine learns of its run's scheduled time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from events.streams.trigger import TriggerBackfilled, TriggerPaused, TriggerUnpaused
from events.types import Metadata, NewEvent, StreamAppend
from services.commands.context import Orchestration
from services.commands.retry import retry_on_conflict
from services.commands.scheduler import fire_scheduled, fired_times
from services.domain import schedules
from services.domain.cron import CronError, parse_cron
from services.domain.errors import BadRequest, NotFound

log = logging.getLogger("dart.scheduler")


def _scheduled_trigger(orch: Orchestration, trigger_id: str) -> Any:
    row = orch.reader.row("trigger", trigger_id)
    if row is None:
        raise NotFound("trigger", trigger_id)
    kind = row.data.get("trigger_type_name")
    if kind != "scheduled":
        raise BadRequest(f"trigger_type_name: trigger {trigger_id} is a {kind} trigger; only scheduled triggers "
                         "are paused, resumed and backfilled")
    return row


def set_paused(orch: Orchestration, trigger_id: str, paused: bool, reason: str, actor: str) -> bool:
    """Pause (or unpause) a scheduled trigger; False when it already was (nothing is recorded). An unpause
    re-arms the trigger at the time on dart's clock, so it fires again from its next scheduled time on and
    never for the times it missed while paused."""

    def attempt() -> bool:
        row = _scheduled_trigger(orch, trigger_id)
        if bool(row.data.get("paused")) == paused:
            return False
        at = orch.clock().isoformat()
        event = (TriggerPaused if paused else TriggerUnpaused)({"paused": paused, "pause_note": reason}, at)
        orch.store.append(StreamAppend(f"trigger-{trigger_id}", row.version, [NewEvent(event, Metadata(actor=actor))]))
        log.info("trigger %s %s by %s: %s", trigger_id, "paused" if paused else "unpaused", actor, reason)
        return True

    return retry_on_conflict(attempt, what=f"trigger {trigger_id}")


@dataclass(frozen=True)
class Backfill:
    scheduled_times: list[str]  # the times fired by this request (a dry run: the times it would fire)
    already_fired: list[str]  # the times of the range fired (or refused) before: never fired again

    def as_dict(self, dry_run: bool) -> dict[str, Any]:
        return {"dry_run": dry_run, "scheduled_times": self.scheduled_times, "already_fired": self.already_fired}


def backfill(orch: Orchestration, trigger_id: str, request: schedules.BackfillRequest, actor: str) -> Backfill:
    """The scheduled times of a trigger from ``start`` to ``end`` (both included) not fired yet; unless a dry
    run, each is fired, oldest first, under the overlap policy (the request's, else the trigger's). A paused
    trigger may be backfilled (the operator asked for these times); an INACTIVE one may not."""
    row = _scheduled_trigger(orch, trigger_id)
    if row.data.get("state") != "ACTIVE":
        raise BadRequest(f"state: trigger {trigger_id} is {row.data.get('state')}; activate it to backfill it")
    try:
        schedule = parse_cron((row.data.get("args") or {}).get("cron_pattern"))
    except CronError as exc:
        raise BadRequest(str(exc)) from None
    times = schedules.backfill_times(schedule, request.start, request.end, schedules.utc(orch.clock()))
    done = fired_times(orch, trigger_id, times)
    todo = [t for t in times if t not in done]
    result = Backfill([t.isoformat() for t in todo], [t.isoformat() for t in times if t in done])
    if request.dry_run or not todo:
        return result
    overlap = request.overlap or schedules.policy(row.data.get("args")).overlap
    note = {"start": request.start.isoformat(), "end": request.end.isoformat(), "overlap_policy": overlap,
            "scheduled_times": result.scheduled_times[:50], "count": len(todo)}
    _record(orch, trigger_id, note, actor)
    fired = [t.isoformat() for t in todo
             if fire_scheduled(orch, trigger_id, t, user_id=actor, overlap=overlap, backfill=True)]
    return Backfill(fired, result.already_fired + [t for t in result.scheduled_times if t not in fired])


def _record(orch: Orchestration, trigger_id: str, note: dict[str, Any], actor: str) -> None:
    def attempt() -> None:
        row = _scheduled_trigger(orch, trigger_id)
        orch.store.append(StreamAppend(f"trigger-{trigger_id}", row.version, [NewEvent(
            TriggerBackfilled(note), Metadata(actor=actor))]))

    retry_on_conflict(attempt, what=f"trigger {trigger_id}")


def scheduled_time_environment(orch: Orchestration, action: dict[str, Any]) -> dict[str, str]:
    """``DART_SCHEDULED_TIME`` for an action of a run a schedule started (ISO 8601 UTC), else nothing: engines
    substitute their date tokens with it, so a backfilled run loads the data of its own day."""
    instance_id = action.get("workflow_instance_id")
    instance = orch.reader.row("workflow_instance", str(instance_id)) if instance_id else None
    scheduled = instance.data.get("scheduled_time") if instance is not None else None
    return {"DART_SCHEDULED_TIME": str(scheduled)} if scheduled else {}
