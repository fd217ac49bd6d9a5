"""The state and editing rules of each entity kind (reference §4, §5), as pure decisions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.commands.auth import Principal
from services.commands.kinds import KINDS
from services.domain.errors import BadRequest

WHO = Principal(key="K", user_id="ann@example.com", scope="user")
SVC = SimpleNamespace(context=SimpleNamespace())


@pytest.mark.parametrize("before", ["ACTIVE", "INACTIVE"])
@pytest.mark.parametrize("after", ["ACTIVE", "INACTIVE"])
def test_a_workflow_moves_between_active_and_inactive(before: str, after: str) -> None:
    KINDS["workflow"].check_transition({"state": before}, {"state": after})


@pytest.mark.parametrize("target", ["QUEUED", "RUNNING", "TEMPLATE", None])
def test_a_workflow_cannot_be_set_to_another_state(target: str | None) -> None:
    with pytest.raises(BadRequest, match="state"):
        KINDS["workflow"].check_transition({"state": "ACTIVE"}, {"state": target})


def test_a_workflow_in_another_state_cannot_be_edited() -> None:
    with pytest.raises(BadRequest, match="only while ACTIVE or INACTIVE"):
        KINDS["workflow"].check_transition({"state": "SOMETHING"}, {"state": "ACTIVE"})


@pytest.mark.parametrize("target", ["ACTIVE", "INACTIVE", "DONE"])
def test_a_template_datastore_can_never_change_state(target: str) -> None:
    with pytest.raises(BadRequest, match="TEMPLATE state cannot be changed"):
        KINDS["datastore"].check_transition({"state": "TEMPLATE"}, {"state": target})
    KINDS["datastore"].check_transition({"state": "TEMPLATE"}, {"state": "TEMPLATE"})  # unchanged is fine


@pytest.mark.parametrize(("before", "after", "ok"), [
    ("INACTIVE", "ACTIVE", True), ("ACTIVE", "DONE", True), ("DONE", "INACTIVE", True),
    ("ACTIVE", "TEMPLATE", False), ("INACTIVE", "RUNNING", False),
])
def test_a_datastore_may_be_set_active_inactive_or_done(before: str, after: str, ok: bool) -> None:
    if ok:
        KINDS["datastore"].check_transition({"state": before}, {"state": after})
    else:
        with pytest.raises(BadRequest, match="ACTIVE, INACTIVE or DONE"):
            KINDS["datastore"].check_transition({"state": before}, {"state": after})


@pytest.mark.parametrize("before", ["QUEUED", "GENERATING", "FAILED"])
def test_a_subscription_is_editable_only_while_active_or_inactive(before: str) -> None:
    with pytest.raises(BadRequest, match="only while ACTIVE or INACTIVE"):
        KINDS["subscription"].check_transition({"state": before}, {"state": "ACTIVE"})
    KINDS["subscription"].check_transition({"state": "ACTIVE"}, {"state": "INACTIVE"})
    with pytest.raises(BadRequest, match="ACTIVE or INACTIVE"):
        KINDS["subscription"].check_transition({"state": "ACTIVE"}, {"state": "QUEUED"})


def test_a_put_changes_only_editable_fields_and_drops_omitted_ones() -> None:
    current = {"name": "w", "state": "ACTIVE", "datastore_id": "D", "engine_name": "e", "concurrency": 1,
               "tags": ["a"], "user_id": "bob@example.com"}
    new = {"name": "w2", "datastore_id": "OTHER", "engine_name": "x", "state": "INACTIVE", "concurrency": 2}
    merged = KINDS["workflow"].merge(SVC, current, new, WHO)  # type: ignore[arg-type]
    assert merged["name"] == "w2" and merged["state"] == "INACTIVE" and merged["concurrency"] == 2
    assert merged["datastore_id"] == "D" and merged["engine_name"] == "e"  # not editable: kept
    assert "tags" not in merged  # editable and omitted: back to its default when validated


def test_a_put_naming_an_unknown_field_is_refused_naming_it() -> None:
    with pytest.raises(BadRequest, match="colour"):
        KINDS["workflow"].merge(SVC, {"name": "w", "state": "ACTIVE"}, {"colour": "red"}, WHO)  # type: ignore[arg-type]


def test_engines_and_datasets_are_replaced_whole_but_keep_their_owner() -> None:
    merged = KINDS["dataset"].merge(SVC, {"name": "d", "user_id": "bob@example.com"},  # type: ignore[arg-type]
                                    {"name": "e", "user_id": "mallory"}, WHO)
    assert merged == {"name": "e", "user_id": "bob@example.com"}


@pytest.mark.parametrize("type_name", ["manual", "retry"])
def test_manual_and_retry_triggers_cannot_be_saved(type_name: str) -> None:
    with pytest.raises(BadRequest, match="cannot be saved"):
        KINDS["trigger"].prepare(SVC, {"trigger_type_name": type_name}, WHO, None, "T")  # type: ignore[arg-type]


def test_a_saved_trigger_gets_a_uuid_tag_and_the_callers_user_id() -> None:
    data = {"trigger_type_name": "event", "tags": ["x"]}
    KINDS["trigger"].prepare(SVC, data, WHO, None, "T")  # type: ignore[arg-type]
    assert data["tags"][0] == "x" and len(data["tags"][1]) == 32 and data["user_id"] == WHO.user_id
