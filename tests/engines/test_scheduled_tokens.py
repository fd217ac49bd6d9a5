"""An engine's date tokens stand for its run's scheduled time when a schedule started the run
(``DART_SCHEDULED_TIME``, issue 15 item 5), else for now."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engines import sdk
from engines.data import s3 as s3_hook


def test_scheduled_time_is_read_from_the_environment() -> None:
    assert sdk.scheduled_time({}) is None
    assert sdk.scheduled_time({"DART_SCHEDULED_TIME": "2025-11-03T02:00:00+00:00"}) == datetime(
        2025, 11, 3, 2, tzinfo=UTC)
    assert sdk.scheduled_time({"DART_SCHEDULED_TIME": "2025-11-03T03:00:00+01:00"}) == datetime(
        2025, 11, 3, 2, tzinfo=UTC)


def test_date_tokens_use_the_scheduled_time_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_hook, "utcnow", lambda: datetime(2026, 12, 6, 23, 30))
    pattern = "s3://b/day={YEAR}-{MONTH}-{DAY}/{HOUR}/"
    monkeypatch.delenv("DART_SCHEDULED_TIME", raising=False)
    assert s3_hook.tokens(pattern, s3_hook.token_time()) == "s3://b/day=2026-12-06/23/"
    monkeypatch.setenv("DART_SCHEDULED_TIME", "2025-11-03T02:00:00+00:00")
    assert s3_hook.tokens(pattern, s3_hook.token_time()) == "s3://b/day=2025-11-03/02/"
    scope = s3_hook.resolve_range("s3://b/logs", {"s3_path_start_prefix_inclusive": "s3://b/logs/{YEAR}{MONTH}{DAY}"})
    assert scope.start == "s3://b/logs/20251103"
