"""Optional fields are served as null while unset (issue 11), as the original's models wrote every field: an
engine written for the original reports progress with a JSON Patch ``replace /data/progress`` on a fresh
action, and the create answer, GET, lists and as_of agree."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE
from tests.api.conftest import Api, unique

ENGINE_PATCHED = ("progress", "queued_time", "start_time", "end_time", "error_message", "extra_data")


@pytest.fixture(scope="module")
def action(api: Api) -> dict[str, Any]:
    api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    datastore = api.post("/datastore", {"data": {"name": unique("ds"), "engine_name": "no_op_engine",
                                                 "state": "INACTIVE", "args": {}}})  # nothing runs here
    [created] = api.post(f"/datastore/{datastore['id']}/action", [{"data": {
        "name": unique("a"), "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}}])
    return created


def test_unset_optional_fields_are_null_in_every_answer(api: Api, action: dict[str, Any]) -> None:
    fetched = api.get(f"/action/{action['id']}")
    for field in ENGINE_PATCHED:
        assert field in action["data"] and action["data"][field] is None, field
        assert field in fetched["data"] and fetched["data"][field] is None, field
    assert fetched == action  # the create answer and GET agree
    [listed] = api.get("/action", params={"filters": [f"id = {action['id']}"]})
    assert listed["data"]["progress"] is None
    past = api.get(f"/action/{action['id']}", params={"as_of": datetime.now(UTC).isoformat()})
    assert past["data"]["start_time"] is None and "start_time" in past["data"]


def test_a_json_patch_replace_of_progress_works_on_a_fresh_action(api: Api, action: dict[str, Any]) -> None:
    patched = api.patch(f"/action/{action['id']}", [{"op": "replace", "path": "/data/progress", "value": 0.5},
                                                    {"op": "replace", "path": "/data/extra_data",
                                                     "value": {"rows": 3}}])
    assert patched["data"]["progress"] == 0.5 and patched["data"]["extra_data"] == {"rows": 3}


def test_other_kinds_serve_their_unset_nullable_fields_as_null(api: Api) -> None:
    datastore = api.post("/datastore", {"data": {"name": unique("ds"), "engine_name": "no_op_engine",
                                                 "state": "INACTIVE", "args": {}}})
    flow = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": unique("wf")}})
    assert "avg_runtime" in flow["data"] and flow["data"]["avg_runtime"] is None
    assert api.get(f"/workflow/{flow['id']}") == flow
