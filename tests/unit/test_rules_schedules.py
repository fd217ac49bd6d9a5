"""The schedules' pure rules (services/domain/schedules.py): catch-up policies, arming by unpause, overlap
outcomes, backfill ranges and the requests' fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.domain import schedules
from services.domain.cron import parse_cron
from services.domain.errors import BadRequest

HOURLY = parse_cron("0 * * * ? *")
DAILY = parse_cron("0 2 * * ? *")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def rule(catchup: str, window: int | None = None) -> schedules.Policy:
    args = {"catchup_policy": catchup, **({"catchup_window_seconds": window} if window else {})}
    return schedules.policy(args)


def test_policy_defaults_are_the_original_behaviour() -> None:
    assert schedules.policy({"cron_pattern": "* * * * ? *"}) == schedules.Policy("skip", "latest",
                                                                                 timedelta(days=1))
    assert schedules.policy({"overlap_policy": "buffer_one", "catchup_policy": "all",
                             "catchup_window_seconds": 60}) == schedules.Policy("buffer_one", "all",
                                                                                timedelta(seconds=60))


def test_latest_fires_only_the_most_recent_missed_time() -> None:
    armed, now = T0 - hours(0.5), T0 + hours(2.5)  # missed 10:00, 11:00, 12:00
    assert schedules.due_times(HOURLY, rule("latest"), armed, now, started=now) == [T0 + hours(2)]


def test_all_fires_every_missed_time_oldest_first() -> None:
    armed, now = T0 - hours(0.5), T0 + hours(2.5)
    assert schedules.due_times(HOURLY, rule("all"), armed, now, started=now) == [T0, T0 + hours(1), T0 + hours(2)]


def test_all_goes_on_after_the_last_handled_time() -> None:
    armed, now = T0 - hours(0.5), T0 + hours(2.5)
    assert schedules.due_times(HOURLY, rule("all"), armed, now, now, after=T0) == [T0 + hours(1), T0 + hours(2)]
    assert schedules.due_times(HOURLY, rule("all"), armed, now, now, after=T0 + hours(2)) == []


def test_all_keeps_to_its_window() -> None:
    armed, now = T0 - hours(10), T0 + hours(2.5)
    assert schedules.due_times(HOURLY, rule("all", 3 * 3600), armed, now, now) == [T0, T0 + hours(1), T0 + hours(2)]


def test_all_looks_at_a_bounded_number_of_times_per_tick() -> None:
    minutely = parse_cron("* * * * ? *")
    armed, now = T0, T0 + hours(20)
    times = schedules.due_times(minutely, rule("all"), armed, now, now)
    assert len(times) == schedules.MAX_CATCHUP_SCAN and times[0] == T0
    assert len(schedules.due_times(minutely, rule("all"), armed, now, now, limit=7)) == 7


def test_none_fires_no_time_from_before_the_scheduler_started() -> None:
    armed, started = T0 - hours(0.5), T0 + hours(2.5)
    assert schedules.due_times(HOURLY, rule("none"), armed, started, started=started) == []
    later = T0 + hours(3)  # 13:00 comes while it runs: fires
    assert schedules.due_times(HOURLY, rule("none"), armed, later, started=started) == [later]


@pytest.mark.parametrize("catchup", schedules.CATCHUP_POLICIES)
def test_no_policy_fires_before_the_trigger_was_armed(catchup: str) -> None:
    armed, now = T0 + hours(2.5), T0 + hours(2.9)
    assert schedules.due_times(HOURLY, rule(catchup), armed, now, started=T0) == []
    assert schedules.due_times(HOURLY, rule(catchup), None, now, started=T0) == []


def event(kind: str, data: dict, at: datetime) -> tuple[str, dict, datetime]:
    return kind, data, at


def test_an_unpause_arms_at_the_time_it_names() -> None:
    created = event("TriggerCreated", {"data": {"state": "ACTIVE"}}, T0)
    paused = event("TriggerPaused", {"changes": {"paused": True}, "at": (T0 + hours(1)).isoformat()}, T0 + hours(1))
    clock = T0 + hours(5)  # the operator's dart runs on a clock ahead of the store's
    unpaused = event("TriggerUnpaused", {"changes": {"paused": False}, "at": clock.isoformat()}, T0 + hours(2))
    assert schedules.armed_at([created], None) == T0
    assert schedules.armed_at([created, paused], None) == T0  # paused: `firing` says no; the arming is as it was
    assert schedules.armed_at([created, paused, unpaused], None) == clock
    fired = event("TriggerFired", {"note": {}}, T0 + hours(6))
    assert schedules.armed_at([created, paused, unpaused, fired], None) == clock


def test_arming_by_state_and_args_as_before() -> None:
    inactive = event("TriggerCreated", {"data": {"state": "INACTIVE"}}, T0)
    activated = event("TriggerUpdated", {"changes": {"state": "ACTIVE"}}, T0 + hours(1))
    renamed = event("TriggerUpdated", {"changes": {"name": "x"}}, T0 + hours(2))
    assert schedules.armed_at([inactive], None) is None
    assert schedules.armed_at([inactive, activated, renamed], None) == T0 + hours(1)
    assert schedules.armed_at([renamed], T0 - hours(9)) == T0 - hours(9)  # armed before the window


def test_firing_needs_active_and_not_paused() -> None:
    assert schedules.firing({"state": "ACTIVE"}) and schedules.firing({"state": "ACTIVE", "paused": False})
    assert not schedules.firing({"state": "ACTIVE", "paused": True})
    assert not schedules.firing({"state": "INACTIVE"})


@pytest.mark.parametrize(("policy", "at_concurrency", "waiting", "outcome"), [
    ("skip", False, False, "start"),
    ("skip", True, False, "skip"),
    ("buffer_one", True, False, "buffer"),
    ("buffer_one", True, True, "skip"),  # one waits at most: Temporal drops the later one
    ("allow_all", True, True, "start"),
])
def test_overlap_outcomes(policy: str, at_concurrency: bool, waiting: bool, outcome: str) -> None:
    assert schedules.overlap_outcome(policy, at_concurrency, waiting) == outcome


def test_backfill_lists_the_times_of_the_range_both_ends_included() -> None:
    start, end = datetime(2026, 11, 1, 2, tzinfo=UTC), datetime(2026, 11, 7, 2, tzinfo=UTC)
    times = schedules.backfill_times(DAILY, start, end, now=end + hours(1))
    assert times == [start + timedelta(days=d) for d in range(7)]
    assert schedules.backfill_times(DAILY, start + hours(1), end - hours(1), end) == times[1:-1]


def test_backfill_refuses_a_backwards_a_future_or_a_too_long_range() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(BadRequest, match="^end: before start"):
        schedules.backfill_times(DAILY, start, start - hours(1), start)
    with pytest.raises(BadRequest, match="^end: .* is in the future"):
        schedules.backfill_times(DAILY, start, start + hours(48), start + hours(1))
    with pytest.raises(BadRequest, match="^end: the range holds more than 1000"):
        schedules.backfill_times(HOURLY, start, start + timedelta(days=60), start + timedelta(days=61))


def test_backfill_request_names_the_bad_field() -> None:
    ok = schedules.backfill_request({"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00+01:00"})
    assert ok.start == datetime(2026, 11, 1, tzinfo=UTC) and ok.end == datetime(2026, 11, 1, 23, tzinfo=UTC)
    assert not ok.dry_run and ok.overlap is None
    for body, field in [({"end": "2026-11-01T00:00:00Z"}, "start"),
                        ({"start": "2026-11-01T00:00:00", "end": "2026-11-01T00:00:00Z"}, "start"),
                        ({"start": "2026-11-01T00:00:00Z", "end": "yesterday"}, "end"),
                        ({"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T00:00:00Z", "dry_run": "yes"},
                         "dry_run"),
                        ({"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T00:00:00Z", "overlap_policy": "x"},
                         "overlap_policy"),
                        ({"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T00:00:00Z", "when": 1}, "when"),
                        ([], "body")]:
        with pytest.raises(BadRequest, match=f"^{field}: "):
            schedules.backfill_request(body)


def test_reason_is_required_and_named() -> None:
    assert schedules.reason_of({"reason": " maintenance "}) == "maintenance"
    for body in (None, {}, {"reason": ""}, {"reason": "  "}, {"reason": 3}, {"reason": "a\x00b"},
                 {"reason": "x" * 1001}):
        with pytest.raises(BadRequest, match="^reason: "):
            schedules.reason_of(body)
    with pytest.raises(BadRequest, match="^note: "):
        schedules.reason_of({"reason": "x", "note": "y"})


def test_a_fire_key_names_its_scheduled_time() -> None:
    key = schedules.fire_key(T0)
    assert key == "scheduled:2026-03-02T10:00:00+00:00"
    assert schedules.scheduled_time_of(key) == T0.isoformat()
    assert schedules.scheduled_time_of("instance:ABC") is None
