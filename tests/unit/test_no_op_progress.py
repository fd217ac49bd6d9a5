"""The no_op engine reports progress where it tells a watcher something: halfway through a sleep long enough to
watch, and at the end only with extra data (a COMPLETED action's progress is 1 by the completion itself)."""

from __future__ import annotations

from typing import Any

import pytest

from engines.no_op.engine import make_handler
from engines.sdk import ActionContext


class Reports:
    def __init__(self) -> None:
        self.progress: list[tuple[float | None, Any]] = []

    def report_progress(self, action_id: str, progress: float | None = None, extra_data: Any = None) -> None:
        self.progress.append((progress, extra_data))

    def subscription_elements(self, action_id: str) -> list[Any]:
        return [object(), object()]


def _context(action_type: str, sleep: float) -> ActionContext:
    action = {"id": "A", "data": {"name": "a", "action_type_name": action_type, "args": {}}}
    datastore = {"id": "D", "data": {"args": {"action_sleep_time_in_seconds": sleep}}}
    return ActionContext(engine={}, action=action, datastore=datastore)


@pytest.mark.parametrize(("sleep", "action_type", "reports"), [
    (0, "fake_action_that_succeeds", []),
    (0.5, "fake_action_that_succeeds", []),
    (2, "fake_action_that_succeeds", [(0.5, None)]),
    (0, "consume_subscription", [(1.0, {"subscription_elements_read": 2})]),
    (2, "consume_subscription", [(0.5, None), (1.0, {"subscription_elements_read": 2})]),
])
def test_progress_is_reported_only_where_it_says_something(sleep: float, action_type: str,
                                                           reports: list[tuple[float, Any]]) -> None:
    slept: list[float] = []
    client = Reports()
    make_handler(sleep=slept.append)(_context(action_type, sleep), client)  # type: ignore[arg-type]
    assert client.progress == reports
    assert sum(slept) == sleep
