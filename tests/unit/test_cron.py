"""services.domain.cron: AWS 6-field cron (1 = Sunday, ?, L, W, #, year) and standard 5-field cron, all UTC."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest

from services.domain.cron import CronError, parse_cron, validate_cron_args

START = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)  # a Saturday


def fires(expr: str, start: datetime = START, n: int = 12) -> list[datetime]:
    schedule = parse_cron(expr)
    out: list[datetime] = []
    t = start
    for _ in range(n):
        found = schedule.next_after(t)
        assert found is not None, f"{expr} stopped firing after {t}"
        out.append(found)
        t = found
    return out


def back(expr: str, start: datetime = START, n: int = 12) -> list[datetime]:
    schedule = parse_cron(expr)
    out: list[datetime] = []
    t = start
    for _ in range(n):
        found = schedule.prev_at_or_before(t)
        assert found is not None
        out.append(found)
        t = found - timedelta(seconds=1)
    return out


def test_aws_day_of_week_2_is_monday_at_noon_utc() -> None:
    for start in (START, datetime(2024, 12, 30, 12, 0, tzinfo=UTC), datetime(2031, 7, 1, tzinfo=UTC)):
        found = fires("0 12 ? * 2 *", start, 30)
        assert all(t.weekday() == 0 and (t.hour, t.minute, t.second) == (12, 0, 0) for t in found), found
        assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in found)
        assert all(b - a == timedelta(days=7) for a, b in zip(found, found[1:]))  # consecutive Mondays
    assert fires("0 12 ? * 2 *", START, 1) == [datetime(2025, 3, 17, 12, 0, tzinfo=UTC)]
    assert parse_cron("0 12 ? * 2 *").croniter_expression == "0 12 * * 1"  # not croniter's seconds field
    backwards = back("0 12 ? * 2 *", START, 10)
    assert all(t.weekday() == 0 and t.hour == 12 for t in backwards)
    assert backwards[0] == datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def test_next_is_strictly_after_and_prev_is_at_or_before() -> None:
    schedule = parse_cron("0 12 ? * 2 *")
    monday_noon = datetime(2025, 3, 17, 12, 0, tzinfo=UTC)
    assert schedule.prev_at_or_before(monday_noon) == monday_noon
    assert schedule.prev_at_or_before(monday_noon + timedelta(seconds=59, microseconds=5)) == monday_noon
    week_before = monday_noon - timedelta(days=7)
    assert schedule.prev_at_or_before(monday_noon - timedelta(microseconds=1)) == week_before
    assert schedule.next_after(monday_noon) == monday_noon + timedelta(days=7)
    assert schedule.next_after(monday_noon - timedelta(microseconds=1)) == monday_noon
    # Another zone means the same instant; a naive time is read as UTC.
    from zoneinfo import ZoneInfo
    local = monday_noon.astimezone(ZoneInfo("America/Los_Angeles"))
    assert schedule.prev_at_or_before(local) == monday_noon
    assert schedule.prev_at_or_before(monday_noon.replace(tzinfo=None)) == monday_noon


def test_every_15_minutes() -> None:
    found = fires("0/15 * * * ? *", datetime(2025, 3, 15, 12, 7, tzinfo=UTC), 8)
    expected = [(12, 15), (12, 30), (12, 45), (13, 0)]
    assert found[:4] == [datetime(2025, 3, 15, h, m, tzinfo=UTC) for h, m in expected]
    assert all(b - a == timedelta(minutes=15) for a, b in zip(found, found[1:]))
    assert [t.minute for t in fires("*/20 * * * ? *", START, 3)] == [20, 40, 0]


def test_first_of_the_month_at_8() -> None:
    found = fires("0 8 1 * ? *", START, 14)
    assert all((t.day, t.hour, t.minute) == (1, 8, 0) for t in found)
    assert [(t.year, t.month) for t in found[:3]] == [(2025, 4), (2025, 5), (2025, 6)]
    assert len({(t.year, t.month) for t in found}) == 14  # one per month, none skipped


def test_weekdays_at_18() -> None:
    found = fires("0 18 ? * MON-FRI *", START, 20)
    assert all(t.weekday() < 5 and t.hour == 18 for t in found)
    assert {t.weekday() for t in found} == {0, 1, 2, 3, 4}
    assert found[-1] - found[0] == timedelta(days=25)  # 20 weekdays: four whole weeks, nothing skipped
    assert [t.weekday() for t in fires("0 18 ? * 2-6 *", START, 5)] == [0, 1, 2, 3, 4]  # same days by number


def test_last_friday_of_the_month() -> None:
    found = fires("0 10 ? * 6L *", START, 12)
    for t in found:
        assert t.weekday() == 4 and t.hour == 10
        assert t.day + 7 > calendar.monthrange(t.year, t.month)[1]  # no Friday after it in the month
    assert found[0] == datetime(2025, 3, 28, 10, 0, tzinfo=UTC)
    assert len({(t.year, t.month) for t in found}) == 12
    assert back("0 10 ? * 6L *", START, 2) == [datetime(2025, 2, 28, 10, tzinfo=UTC),
                                               datetime(2025, 1, 31, 10, tzinfo=UTC)]
    assert all(t.weekday() == 6 for t in fires("0 10 ? * 1L *", START, 6))  # 1L: the last Sunday


def test_first_monday_of_the_month() -> None:
    found = fires("0 9 ? * 2#1 *", START, 12)
    assert all(t.weekday() == 0 and t.day <= 7 and t.hour == 9 for t in found)
    assert found[0] == datetime(2025, 4, 7, 9, 0, tzinfo=UTC)
    assert len({(t.year, t.month) for t in found}) == 12
    third_wednesdays = fires("0 9 ? * WED#3 *", START, 6)
    assert all(t.weekday() == 2 and 15 <= t.day <= 21 for t in third_wednesdays)


def test_nearest_weekday_to_the_15th() -> None:
    found = fires("0 9 15W * ? *", datetime(2025, 1, 1, tzinfo=UTC), 24)
    assert len({(t.year, t.month) for t in found}) == 24
    for t in found:
        assert t.weekday() < 5 and t.hour == 9
        fifteenth = calendar.weekday(t.year, t.month, 15)
        expected = {5: 14, 6: 16}.get(fifteenth, 15)  # Saturday: Friday before; Sunday: Monday after
        assert t.day == expected, t
    by_month = {(t.year, t.month): t.day for t in found}
    assert by_month[(2025, 3)] == 14 and by_month[(2025, 6)] == 16 and by_month[(2025, 4)] == 15
    assert back("0 9 15W * ? *", datetime(2025, 3, 20, tzinfo=UTC), 2) == [
        datetime(2025, 3, 14, 9, tzinfo=UTC), datetime(2025, 2, 14, 9, tzinfo=UTC)]
    # W never leaves the month: the 1st on a Saturday goes to Monday the 3rd; LW is the last weekday.
    assert datetime(2025, 3, 3, tzinfo=UTC) in fires("0 0 1W * ? *", datetime(2025, 2, 10, tzinfo=UTC), 2)
    assert datetime(2025, 6, 2, tzinfo=UTC) in fires("0 0 1W * ? *", datetime(2025, 5, 10, tzinfo=UTC), 2)
    last_weekdays = fires("0 0 LW * ? *", datetime(2025, 1, 1, tzinfo=UTC), 12)
    days = [t.day for t in last_weekdays]
    assert days[4] == 30 and days[10] == 28  # May 2025 ends on a Saturday, November 2025 on a Sunday
    assert all(t.weekday() < 5 and t.day + 3 > calendar.monthrange(t.year, t.month)[1] for t in last_weekdays)


def test_last_day_of_the_month() -> None:
    found = fires("0 0 L * ? *", datetime(2024, 1, 5, tzinfo=UTC), 14)
    assert all(t.day == calendar.monthrange(t.year, t.month)[1] for t in found)
    assert datetime(2024, 2, 29, tzinfo=UTC) in found


def test_year_restrictions() -> None:
    schedule = parse_cron("0 0 1 1 ? 2030")
    assert schedule.next_after(START) == datetime(2030, 1, 1, tzinfo=UTC)
    assert schedule.next_after(datetime(2030, 1, 1, tzinfo=UTC)) is None  # never again
    assert schedule.prev_at_or_before(datetime(2029, 12, 31, 23, 59, tzinfo=UTC)) is None  # never before
    assert schedule.prev_at_or_before(datetime(2045, 6, 1, tzinfo=UTC)) == datetime(2030, 1, 1, tzinfo=UTC)
    listed = parse_cron("0 0 1 1 ? 2030,2032-2033")
    t, seen = START, []
    while (t := listed.next_after(t)) is not None:  # type: ignore[assignment]
        seen.append(t.year)
    assert seen == [2030, 2032, 2033]
    assert listed.prev_at_or_before(datetime(2032, 6, 1, tzinfo=UTC)) == datetime(2032, 1, 1, tzinfo=UTC)
    assert listed.prev_at_or_before(datetime(2031, 12, 31, tzinfo=UTC)) == datetime(2030, 1, 1, tzinfo=UTC)
    # Years beyond croniter's own 2099, and a W pattern within a year.
    assert parse_cron("0 0 1 1 ? 2150").next_after(START) == datetime(2150, 1, 1, tzinfo=UTC)
    assert {t.year for t in fires("0 9 15W * ? 2027", START, 12)} == {2027}


def test_standard_five_field_cron() -> None:
    found = fires("30 2 * * 1", START, 10)  # 1 = Monday in standard cron
    assert all(t.weekday() == 0 and (t.hour, t.minute) == (2, 30) for t in found)
    assert all(b - a == timedelta(days=7) for a, b in zip(found, found[1:]))
    assert all(t.weekday() == 6 for t in fires("0 0 * * 0", START, 3) + fires("0 0 * * 7", START, 3))
    assert all(t.weekday() == 4 for t in fires("0 0 ? * FRI", START, 3))
    assert [t.minute for t in fires("*/15 * * * *", datetime(2025, 3, 15, 12, 7, tzinfo=UTC), 2)] == [15, 30]
    # Both day fields restricted: either matches (Vixie cron), unlike AWS which refuses it.
    either = fires("0 0 1 * 1", datetime(2025, 3, 25, tzinfo=UTC), 3)
    assert either == [datetime(2025, 3, 31, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC),
                      datetime(2025, 4, 7, tzinfo=UTC)]


@pytest.mark.parametrize(("expr", "problem"), [
    ("0 12 1 * 2 *", "day-of-month or day-of-week must be ?"),
    ("0 12 * * * *", "day-of-month or day-of-week must be ?"),
    ("0 12 ? * ? *", "not both"),
    ("0 12 * *", "expected 6 fields"),
    ("0 12 * * ? * 2030", "not 7"),
    ("", "not 0"),
    ("60 12 ? * 2 *", "minutes: 60 is out of range 0-59"),
    ("0 24 ? * 2 *", "hours: 24 is out of range 0-23"),
    ("0 12 32 * ? *", "day-of-month: 32 is out of range 1-31"),
    ("0 12 0 * ? *", "day-of-month: 0 is out of range 1-31"),
    ("0 12 1 13 ? *", "month: 13 is out of range 1-12"),
    ("0 12 ? * 8 *", "day-of-week: 8 is out of range 1-7"),
    ("0 12 ? * 0 *", "day-of-week: 0 is out of range 1-7"),  # AWS counts from 1 = Sunday
    ("0 12 ? * 5-2 *", "day-of-week: range '5-2' goes backwards"),
    ("0 12 ? * FUN *", "day-of-week: 'FUN' is not a number or a name"),
    ("0 12 1 * ? 1969", "year: 1969 is out of range 1970-2199"),
    ("0 */0 1 * ? *", "hours: step '0'"),
    ("0 12 ? * 2#6 *", "day-of-week: '2#6'"),
    ("0 12 ? * 2,6L *", "mixes plain days"),
    ("0 12 L-2 * ? *", "day-of-month: 'L-2'"),
    ("0 12 30 2 ? *", "day-of-month: 30 never occurs"),
    ("0 0 29 2 ? 2031", "never fires"),
    ("0 12 * * 8", "day-of-week: 8 is out of range 0-7"),
    ("0 12 15W * 1", "W cannot be combined"),
    ("x 12 * * ?", "minutes: 'X' is not a number"),
])
def test_errors_name_the_problem(expr: str, problem: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    message = str(caught.value)
    assert message.startswith("cron_pattern: "), message
    assert problem in message, message
    assert isinstance(caught.value, ValueError)


def test_validate_cron_args() -> None:
    validate_cron_args({"cron_pattern": "0 12 ? * 2 *"})
    validate_cron_args({"cron_pattern": "30 2 * * 1"})
    with pytest.raises(CronError, match="cron_pattern: required"):
        validate_cron_args({})
    with pytest.raises(CronError, match="cron_pattern: must be a string"):
        validate_cron_args({"cron_pattern": 5})
    with pytest.raises(CronError, match="day-of-month or day-of-week must be \\?"):
        validate_cron_args({"cron_pattern": "0 12 * * 2 *"})
