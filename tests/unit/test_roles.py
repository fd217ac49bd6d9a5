"""The role rules of services/domain/roles.py and the failed-authentication throttle, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.api.middleware import FailureThrottle
from services.domain import roles
from services.domain.roles import ACTIVATE, EDIT, EDIT_OR_ENGINE, ENGINE, ENGINE_ONLY, NO_KEY, OPERATE, VIEW

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_each_role_may_do_what_the_ones_below_it_may() -> None:
    assert [OPERATE.admits(r) for r in roles.ROLES] == [False, True, True, True]
    assert [EDIT.admits(r) for r in roles.ROLES] == [False, False, True, True]
    assert [VIEW.admits(r) for r in roles.ROLES] == [True] * 4
    assert not EDIT.admits(None) and not VIEW.admits(None) and NO_KEY.admits(None)


def test_a_launch_token_reads_and_calls_only_the_engine_routes() -> None:
    assert VIEW.admits(ENGINE) and ENGINE_ONLY.admits(ENGINE) and EDIT_OR_ENGINE.admits(ENGINE)
    assert not OPERATE.admits(ENGINE) and not EDIT.admits(ENGINE) and not ACTIVATE.admits(ENGINE)
    assert ENGINE_ONLY.admits("admin") and not ENGINE_ONLY.admits("editor")


def test_activation_lets_an_operator_past_the_gate_to_change_only_the_state() -> None:
    assert ACTIVATE.admits("operator") and not ACTIVATE.admits("viewer")
    assert roles.refused_change("operator", "workflow", {"state"}) is None
    refused = roles.refused_change("operator", "workflow", {"state", "concurrency"})
    assert refused is not None and refused.startswith("concurrency:") and "role editor" in refused
    assert roles.refused_change("editor", "workflow", {"name"}) is None
    assert roles.refused_change(ENGINE, "action", {"progress"}) is None


def test_stored_scopes_are_roles_and_old_user_keys_are_editors() -> None:
    assert roles.role_of_scope("user") == "editor"
    assert roles.role_of_scope("admin") == "admin" and roles.role_of_scope("viewer") == "viewer"
    assert roles.role_of_scope("action:ABC") == ENGINE
    assert roles.role_of_scope("root") is None


def test_key_events_are_served_without_salt_or_hash_and_others_unchanged() -> None:
    created = {"type": "ApiKeyCreated", "data": {"data": {"user_id": "u", "salt": "s", "secret_hash": "h"}}}
    updated = {"type": "ApiKeyUpdated", "data": {"changes": {"salt": "s", "secret_hash": "h", "scope": "admin"}}}
    assert roles.redact_key_event(created)["data"] == {"data": {"user_id": "u"}}
    assert roles.redact_key_event(updated)["data"] == {"changes": {"scope": "admin"}}
    other = {"type": "WorkflowCreated", "data": {"data": {"salt": "kept"}}}
    assert roles.redact_key_event(other) is other


@pytest.mark.parametrize("value", ["2026-06-01T11:00:00+00:00", "tomorrow", "2027-01-01T00:00:00", 5,
                                   "0001-01-01T00:00:00+01:00"])
def test_a_bad_expiry_is_refused_naming_expires(value: object) -> None:
    with pytest.raises(ValueError, match="^expires: "):
        roles.parse_expires(value, NOW)


def test_an_expiry_is_stored_in_utc_and_passes_at_that_moment() -> None:
    stored = roles.parse_expires("2026-06-01T14:00:00+02:00", NOW.replace(hour=11))
    assert stored == "2026-06-01T12:00:00+00:00"
    assert roles.expired(stored, NOW) and not roles.expired(stored, NOW.replace(hour=11))
    assert roles.parse_expires(None, NOW) is None and not roles.expired(None, NOW)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_allows_a_burst_then_one_failure_per_refill_interval() -> None:
    clock = Clock()
    throttle = FailureThrottle(burst=3, per_second=0.5, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
    assert throttle.retry_after("a") == 2  # one failure's worth back in 1 / 0.5 s
    assert throttle.retry_after("b") is None  # per address
    clock.now += 1.0
    assert throttle.retry_after("a") == 1
    clock.now += 1.0
    assert throttle.retry_after("a") is None
    throttle.failed("a")
    assert throttle.retry_after("a") == 2
    clock.now += 60  # long enough to refill: the address is forgotten, with its whole burst back
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
    assert throttle.retry_after("a") is not None
