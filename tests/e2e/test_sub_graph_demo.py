"""The seed README's demo through the graph API on a fresh `dart up` (reference §12.1): the no_op engine's
"workflow chaining demo" is there from the first start, a recipe of a new datastore; saved in one request, then
workflow 1 started by hand, and both workflows run to COMPLETED (workflow 2 through the saved trigger)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.stacks import KEY, SECRET, RunningDart


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    running = RunningDart(tmp_path_factory.mktemp("dart-demo"), None)
    try:
        yield running
    finally:
        running.stop()


def test_the_workflow_chaining_demo_saved_from_its_recipe_runs_both_workflows(up: RunningDart) -> None:
    api = up.api()
    engine = api.ok("GET", "/engine", params={"filters": ["name = no_op_engine"]})[0]
    [definition] = api.ok("GET", f"/engine/{engine['id']}/subgraph_definition")
    assert definition["data"]["name"] == "workflow chaining demo"
    store = api.ok("POST", "/datastore", {"data": {"name": "demo", "engine_name": "no_op_engine", "state": "ACTIVE",
                                                   "args": {"action_sleep_time_in_seconds": 0}}})
    recipes = api.ok("GET", "/graph/sub_graph", params={"related_type": "datastore", "related_id": store["id"]})
    demo = next(r for r in recipes["no_op_engine"] if r["name"] == "workflow chaining demo")
    related = {f"datastore-{e['source_id']}": {"entity_id": store["id"], "entity_type": "datastore",
                                               "relationship": "PARENT", "edge": e}
               for e in demo["graph"]["edges"] if e["source_id"].startswith("PARENT")}
    saved = api.ok("POST", "/graph/sub_graph", {"unsaved_entities": demo["entity_map"], "related_entity_data": related})
    flows = {e["data"]["name"]: e["id"] for k, e in saved.items() if k.startswith("workflow-")}
    first, second = flows["no-op-workflow-chaining-wf1"], flows["no-op-workflow-chaining-wf2"]
    api.ok("POST", f"/workflow/{first}/do-manual-trigger")
    states = _wait_for_runs(api, [first, second])
    assert states == ["COMPLETED", "COMPLETED"], states
    graph = api.ok("GET", f"/graph/workflow/{second}")
    runs = [n for n in graph["nodes"] if n["entity_type"] == "workflow_instance"]
    assert runs and {n["state"] for n in runs} == {"COMPLETED"}
    failed = [n for n in graph["nodes"] if n["entity_type"] == "action" and n["state"] == "FAILED"]
    assert [n["sub_type"] for n in failed] == ["fake_action_that_fails"]  # the demo's failure, on CONTINUE


def _wait_for_runs(api: Any, workflow_ids: list[str], timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for workflow_id in workflow_ids:
            runs = api.ok("GET", f"/workflow/{workflow_id}/instance")
            states.append(runs[0]["data"]["state"] if runs else "NOT STARTED")
        if all(s in ("COMPLETED", "FAILED") for s in states) or time.monotonic() > deadline:
            return states
        time.sleep(0.3)


def test_the_engines_own_register_command_stores_its_definition_as_the_original_did(up: RunningDart) -> None:
    api = up.api()
    engine = api.ok("GET", "/engine", params={"filters": ["name = no_op_engine"]})[0]
    [definition] = api.ok("GET", f"/engine/{engine['id']}/subgraph_definition")
    api.ok("DELETE", f"/subgraph_definition/{definition['id']}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
    done = subprocess.run([sys.executable, "-m", "engines.no_op", "register", "--api-url", f"{up.base}/api/1",
                           "--token", f"{KEY}:{SECRET}"], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert [d["data"]["name"] for d in api.ok("GET", f"/engine/{engine['id']}/subgraph_definition")] == [
        "workflow chaining demo"]
    again = subprocess.run([sys.executable, "-m", "engines.no_op", "register", "--api-url", f"{up.base}/api/1",
                            "--token", f"{KEY}:{SECRET}"], env=env, capture_output=True, text=True, timeout=120,
                           check=False)
    assert again.returncode == 0 and len(api.ok("GET", f"/engine/{engine['id']}/subgraph_definition")) == 1
