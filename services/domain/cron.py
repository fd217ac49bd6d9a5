"""Cron expressions as dart reads them (design.md §6, reference §7): AWS CloudWatch/EventBridge cron, and
standard 5-field cron. Every time is UTC.

**AWS form**, 6 fields: ``minutes hours day-of-month month day-of-week year``.

- minutes 0-59, hours 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week **1-7 with 1 = Sunday** or
  SUN-SAT, year 1970-2199; each takes ``*``, ``a``, ``a-b``, ``a/step``, ``*/step``, ``a-b/step`` and lists.
- Exactly one of day-of-month and day-of-week is ``?``.
- day-of-month also takes ``L`` (last day), ``NW`` (the weekday nearest day N, within the month) and ``LW``
  (the last weekday); each stands alone.
- day-of-week also takes ``NL`` (the last day N of the month: ``6L`` is the last Friday), ``N#k`` (the k-th
  day N: ``2#1`` is the first Monday; a list of these is fine) and ``L`` alone (Saturday).

**Standard form**, 5 fields: ``minute hour day-of-month month day-of-week`` with day-of-week 0-7 (0 and 7 =
Sunday) or SUN-SAT; ``?`` reads as ``*``. When both day fields are restricted a day matching either fires
(Vixie cron). ``L``, ``NL`` and ``N#k`` work as above; ``W`` only with an unrestricted day-of-week.

**How it is evaluated.** croniter reads a sixth field as seconds, so the expression is translated to the
5-field croniter syntax: every plain field is expanded to an explicit list of values (so AWS's 1-7
day-of-week becomes croniter's 0-6, and AWS's ``0/15`` means what AWS means), ``?`` becomes ``*``, ``NL``
becomes croniter's ``L<N-1>`` and ``N#k`` becomes ``<N-1>#k``. What croniter lacks is done here:

- the year field is a filter over croniter's candidates, jumping straight to the next (or previous) allowed
  year, so AWS's years up to 2199 work;
- ``W``: for each month the one weekday is computed, and croniter is asked for that day's times only.

A schedule that can never fire again (a past year) gives ``None`` from ``next_after``; one that never fired by
a time gives ``None`` from ``prev_at_or_before``. Dates that cannot exist (``0 0 30 2 ? *``) are refused when
parsed. Naive datetimes given to a schedule are read as UTC.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter
from croniter.croniter import CroniterBadDateError, CroniterError

PREFIX = "cron_pattern: "

MONTH_NAMES = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


class CronError(ValueError):
    """A cron expression dart cannot accept; the message starts ``cron_pattern:`` and names the problem."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem if problem.startswith(PREFIX) else PREFIX + problem)


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int]


MINUTES = _Field("minutes", 0, 59, {})
HOURS = _Field("hours", 0, 23, {})
DAY_OF_MONTH = _Field("day-of-month", 1, 31, {})
MONTH = _Field("month", 1, 12, MONTH_NAMES)
AWS_DAY_OF_WEEK = _Field("day-of-week", 1, 7, {n: i + 1 for i, n in enumerate(DAY_NAMES)})
STD_DAY_OF_WEEK = _Field("day-of-week", 0, 7, {n: i for i, n in enumerate(DAY_NAMES)})
YEAR = _Field("year", 1970, 2199, {})

_NTH = re.compile(r"^([0-9A-Z]+)#([0-9]+)$")
_LAST_OF = re.compile(r"^([0-9A-Z]+)L$")
_WEEKDAY_NEAR = re.compile(r"^([0-9]+)W$")


def _number(text: str) -> bool:
    """ASCII digits, few enough for int(): str.isdigit() alone is true for "²" and "٣", which int() refuses."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def _value(field: _Field, token: str) -> int:
    if _number(token):
        value = int(token)
    elif token in field.names:
        value = field.names[token]
    else:
        raise CronError(f"{field.name}: {token!r} is not a number" + (" or a name" if field.names else ""))
    if not field.lo <= value <= field.hi:
        raise CronError(f"{field.name}: {value} is out of range {field.lo}-{field.hi}")
    return value


def _item(field: _Field, item: str) -> list[int]:
    """One list item: ``*``, ``a``, ``a-b``, ``a/s``, ``*/s`` or ``a-b/s``."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _number(step_text) or int(step_text) == 0:
            raise CronError(f"{field.name}: step {step_text!r} in {item!r} must be a positive number")
        step = int(step_text)
    if base == "*":
        lo, hi = field.lo, field.hi
    elif "-" in base:
        first, _, last = base.partition("-")
        lo, hi = _value(field, first), _value(field, last)
        if lo > hi:
            raise CronError(f"{field.name}: range {item!r} goes backwards")
    elif base:
        lo = _value(field, base)
        hi = field.hi if slash else lo
    else:
        raise CronError(f"{field.name}: empty item in the list")
    return list(range(lo, hi + 1, step))


def _values(field: _Field, text: str) -> list[int]:
    if text == "":
        raise CronError(f"{field.name}: empty")
    found: set[int] = set()
    for item in text.split(","):
        found.update(_item(field, item))
    return sorted(found)


def _list(values: list[int], full: range | None = None) -> str:
    if full is not None and set(values) >= set(full):
        return "*"
    return ",".join(str(v) for v in values)


@dataclass(frozen=True)
class _DayOfMonth:
    croniter: str  # what croniter is given for the day-of-month field
    weekday: int | str | None = None  # W: the day N, or "L" for LW
    days: tuple[int, ...] = ()  # plain days, for the impossible-date check


def _day_of_month(text: str) -> _DayOfMonth:
    if text in ("?", "*"):
        return _DayOfMonth("*")
    if text == "L":
        return _DayOfMonth("L")
    if text == "LW":
        return _DayOfMonth("*", "L")
    near = _WEEKDAY_NEAR.match(text)
    if near:
        day = _value(DAY_OF_MONTH, near.group(1))
        return _DayOfMonth("*", day, (day,))
    if "L" in text or "W" in text or "?" in text or "#" in text:
        raise CronError(f"day-of-month: {text!r}: L, LW, NW and ? stand alone (e.g. L, LW or 15W)")
    days = _values(DAY_OF_MONTH, text)
    return _DayOfMonth(_list(days, range(1, 32)), None, tuple(days))


def _day_of_week(text: str, aws: bool) -> tuple[str, bool]:
    """The croniter day-of-week field (0-6, 0 = Sunday) and whether the field restricts days."""
    field = AWS_DAY_OF_WEEK if aws else STD_DAY_OF_WEEK

    def croniter_day(token: str) -> int:
        value = _value(field, token)
        return value - 1 if aws else value % 7

    if text in ("?", "*"):
        return "*", False
    if text == "L" and aws:
        return "6", True  # L alone: the last day of the week, Saturday
    plain: set[int] = set()
    special: list[str] = []
    for item in text.split(","):
        nth, last = _NTH.match(item), _LAST_OF.match(item)
        if nth:
            k = int(nth.group(2))
            if not 1 <= k <= 5:
                raise CronError(f"day-of-week: {item!r}: the week number after # must be 1-5")
            special.append(f"{croniter_day(nth.group(1))}#{k}")
        elif last:
            special.append(f"L{croniter_day(last.group(1))}")
        elif "#" in item or "?" in item or item.endswith("L"):
            raise CronError(f"day-of-week: {item!r} is not a day, a range, N#k or NL")
        else:
            plain.update(v - 1 if aws else v % 7 for v in _item(field, item))
    if special and plain:
        raise CronError(f"day-of-week: {text!r} mixes plain days with # or L, which cannot be combined")
    if special:
        return ",".join(special), True
    return _list(sorted(plain), range(7)), plain != set(range(7))


def _weekday_in(year: int, month: int, spec: int | str) -> int | None:
    """The day of the month that ``NW`` (or ``LW``) selects, or None when the month has no day N."""
    last = calendar.monthrange(year, month)[1]
    if spec == "L":
        day = last
    else:
        assert isinstance(spec, int)
        if spec > last:
            return None
        day = spec
    weekday = calendar.weekday(year, month, day)  # Monday = 0 ... Sunday = 6
    if weekday == 5:  # Saturday: Friday before, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: Monday after, unless that leaves the month
        return day + 1 if day < last else day - 2
    return day


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        return t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def _floor_second(t: datetime) -> datetime:
    return t.replace(microsecond=0)


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression. ``croniter_expression`` is what croniter evaluates (5 fields, UTC)."""

    expression: str  # as given, upper-cased, single spaces
    aws: bool
    croniter_expression: str
    years: tuple[int, ...] | None  # None: any year
    weekday: int | str | None = None  # W: the day N, or "L" for LW
    minutes: str = "*"
    hours: str = "*"
    months: tuple[int, ...] = tuple(range(1, 13))

    # ------------------------------------------------------------------------------------------ public
    def next_after(self, t: datetime) -> datetime | None:
        """The first fire time strictly after ``t`` (aware UTC), or None when there is none."""
        cursor = _floor_second(_utc(t))
        for _ in range(len(self.years or ()) + 2):
            found = self._next_raw(cursor)
            if found is None or self.years is None or found.year in self.years:
                return found
            later = [y for y in self.years if y > found.year]
            if not later:
                return None
            cursor = datetime(later[0], 1, 1, tzinfo=UTC) - timedelta(seconds=1)
        return None

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        """The last fire time at or before ``t`` (aware UTC), or None when there is none."""
        cursor = _floor_second(_utc(t)) + timedelta(seconds=1)  # croniter's get_prev is strictly before
        for _ in range(len(self.years or ()) + 2):
            found = self._prev_raw(cursor)
            if found is None or self.years is None or found.year in self.years:
                return found
            earlier = [y for y in self.years if y < found.year]
            if not earlier:
                return None
            cursor = datetime(earlier[-1] + 1, 1, 1, tzinfo=UTC)
        return None

    # ---------------------------------------------------------------------------------------- croniter
    @staticmethod
    def _croniter(expression: str, start: datetime, forward: bool) -> datetime | None:
        try:
            it = croniter(expression, start)
            found = it.get_next(datetime) if forward else it.get_prev(datetime)
        except CroniterBadDateError:  # nothing within croniter's search horizon
            return None
        return _utc(found)

    def _next_raw(self, cursor: datetime) -> datetime | None:
        if self.weekday is None:
            return self._croniter(self.croniter_expression, cursor, True)
        year, month = cursor.year, cursor.month
        for _ in range(25):
            if month in self.months:
                day = _weekday_in(year, month, self.weekday)
                if day is not None:
                    start = max(cursor, datetime(year, month, day, tzinfo=UTC) - timedelta(seconds=1))
                    found = self._croniter(f"{self.minutes} {self.hours} {day} {month} *", start, True)
                    if found is not None and (found.year, found.month, found.day) == (year, month, day):
                        return found
            year, month = _add_months(year, month, 1)
        return None

    def _prev_raw(self, cursor: datetime) -> datetime | None:
        if self.weekday is None:
            return self._croniter(self.croniter_expression, cursor, False)
        year, month = cursor.year, cursor.month
        for _ in range(25):
            if month in self.months:
                day = _weekday_in(year, month, self.weekday)
                if day is not None:
                    start = min(cursor, datetime(year, month, day, tzinfo=UTC) + timedelta(days=1))
                    found = self._croniter(f"{self.minutes} {self.hours} {day} {month} *", start, False)
                    if found is not None and (found.year, found.month, found.day) == (year, month, day):
                        return found
            year, month = _add_months(year, month, -1)
        return None


def parse_cron(expr: Any) -> CronSchedule:
    """Parse an AWS (6-field) or standard (5-field) cron expression; CronError names what is wrong."""
    if not isinstance(expr, str):
        raise CronError(f"must be a string, not {type(expr).__name__}")
    return _parse(" ".join(expr.upper().split()))


@functools.lru_cache(maxsize=1024)
def _parse(expr: str) -> CronSchedule:
    fields = expr.split(" ") if expr else []
    if len(fields) not in (5, 6):
        raise CronError(f"expected 6 fields (AWS: minutes hours day-of-month month day-of-week year) "
                        f"or 5 (standard cron), not {len(fields)}")
    aws = len(fields) == 6
    minute_text, hour_text, dom_text, month_text, dow_text = fields[:5]
    if aws and (dom_text == "?") == (dow_text == "?"):
        if dom_text == "?":
            raise CronError("day-of-month or day-of-week must be ?, not both")
        raise CronError("day-of-month or day-of-week must be ?")
    minutes = _list(_values(MINUTES, minute_text), range(60))
    hours = _list(_values(HOURS, hour_text), range(24))
    months = _values(MONTH, month_text)
    dom = _day_of_month(dom_text)
    dow, dow_restricted = _day_of_week(dow_text, aws)
    if dom.weekday is not None and dow_restricted:
        raise CronError("day-of-month: W cannot be combined with a restricted day-of-week")
    years: tuple[int, ...] | None = None
    if aws and fields[5] != "*":
        years = tuple(_values(YEAR, fields[5]))
    if dom.days and not dow_restricted:
        longest = max(29 if m == 2 else calendar.monthrange(2001, m)[1] for m in months)
        if min(dom.days) > longest:
            raise CronError(f"day-of-month: {dom_text} never occurs in month {month_text}")
    expression = f"{minutes} {hours} {dom.croniter} {_list(months, range(1, 13))} {dow}"
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CroniterError as exc:  # what the checks above missed: croniter's own word
        raise CronError(f"{expr!r} is not understood: {exc}") from exc
    schedule = CronSchedule(expr, aws, expression, years, dom.weekday, minutes, hours, tuple(months))
    start = datetime(years[0] if years else 2000, 1, 1, tzinfo=UTC) - timedelta(seconds=1)
    if schedule.next_after(start) is None:
        raise CronError(f"{expr!r} never fires")
    return schedule


def validate_cron_args(args: Any) -> None:
    """The check for a scheduled trigger's args: ``cron_pattern`` is present and parses; else CronError."""
    if not isinstance(args, dict) or "cron_pattern" not in args:
        raise CronError("required for a scheduled trigger")
    parse_cron(args["cron_pattern"])
