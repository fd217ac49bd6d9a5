"""Subgraph recipes and their save (reference §5.10, §3.11): the built-in recipes per selected entity, an
engine's stored definitions (the no_op engine's "workflow chaining demo"), the save of an entity map as one
append with its placeholders rewritten, the existing triggers it hangs from updated, and a map with one bad
entity refused whole."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE, workflow_chaining_demo
from services.commands.auth import create_api_key
from tests.api.both_stores import started
from tests.api.conftest import Api, InProcessDart, unique
from tests.support.stores import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessDart]:
    """The app on SQLite, then on a fresh PostgreSQL database (the graph's queries differ by dialect)."""
    with started(request.param, tmp_path_factory.mktemp(f"graph-{request.param}")) as running:
        yield running


@pytest.fixture(scope="module")
def api(dart: InProcessDart) -> Api:
    return dart.api


@pytest.fixture(scope="module")
def engine(api: Api) -> dict[str, Any]:
    found = api.request("GET", "/engine", params={"filters": ["name = no_op_engine"]})[1]["results"]
    engine = found[0] if found else api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    if not api.get(f"/engine/{engine['id']}/subgraph_definition"):
        api.post(f"/engine/{engine['id']}/subgraph_definition", {"data": workflow_chaining_demo()})
    return engine


@pytest.fixture()
def datastore(api: Api, engine: dict[str, Any]) -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": unique("ds"), "engine_name": "no_op_engine", "state": "ACTIVE",
                                            "args": {"action_sleep_time_in_seconds": 0}}})


def head(api: Api) -> int:
    return int(api.request("GET", "/ready")[1]["head_position"])


def recipe(api: Api, name: str, **params: str) -> dict[str, Any]:
    found = api.get("/graph/sub_graph", params=params)
    for recipes in found.values():
        for r in recipes:
            if r["name"] == name:
                return r
    raise AssertionError(f"no recipe {name!r} in {found}")


def parent_of(selected_type: str, selected_id: str, recipe_: dict[str, Any]) -> dict[str, Any]:
    """``related_entity_data`` as the original UI built it for a recipe hung from the selected entity."""
    side = "source_id" if recipe_["related_is_a"] == "PARENT" else "destination_id"
    return {f"{selected_type}-{e[side]}": {"entity_id": selected_id, "entity_type": selected_type,
                                           "relationship": recipe_["related_is_a"], "edge": e}
            for e in recipe_["graph"]["edges"] if e[side].startswith(recipe_["related_is_a"])}


def test_recipes_for_nothing_selected_a_dataset_and_a_workflow(api: Api, engine: dict[str, Any],
                                                                datastore: dict[str, Any]) -> None:
    top = api.get("/graph/sub_graph")
    assert {r["name"] for r in top["null"]} == {"dataset", "event"}
    assert [r["name"] for r in top["no_op_engine"]] == ["datastore"]
    assert [r["name"] for r in api.get("/graph/sub_graph", params={"engine_name": "no_op_engine"})["no_op_engine"]] \
        == ["datastore"]  # once, with the engine named too
    event = top["null"][1]
    (key, entity), = event["entity_map"].items()
    assert key.startswith("event-UNSAVED-") and entity["id"] == key.split("-", 1)[1]
    assert event["graph"]["nodes"] == [{"entity_type": "event", "entity_id": entity["id"], "name": "event",
                                        "state": None, "sub_type": None}]
    assert api.get("/graph/sub_graph")["null"][1]["entity_map"].keys() != event["entity_map"].keys()  # fresh ids
    assert [r["name"] for r in api.get("/graph/sub_graph", params={"related_type": "dataset"})["null"]] == \
        ["subscription"]
    by_store = api.get("/graph/sub_graph", params={"related_type": "datastore", "related_id": datastore["id"]})
    names = [r["name"] for r in by_store["no_op_engine"]]
    action_types = [t["name"] for t in NO_OP_ENGINE["supported_action_types"]]
    assert names == ["workflow", *action_types, "workflow chaining demo"]
    flow = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": unique("wf")}})
    by_flow = api.get("/graph/sub_graph", params={"related_type": "workflow", "related_id": flow["id"]})
    assert [r["name"] for r in by_flow["no_op_engine"]] == [
        *action_types, "workflow completion trigger", "scheduled trigger", "super trigger"]
    assert by_flow["no_op_engine"][-1]["related_is_a"] == "CHILD"
    assert api.request("GET", "/graph/sub_graph", params={"related_type": "nope"})[0] == 400
    assert api.request("GET", "/graph/sub_graph", params={"related_type": "workflow", "related_id": "NOSUCHWF00"})[0] \
        == 404


def test_the_workflow_chaining_demo_saves_in_one_append_with_its_ids_rewritten(api: Api, datastore: dict[str, Any],
                                                                              dart: InProcessDart) -> None:
    demo = recipe(api, "workflow chaining demo", related_type="datastore", related_id=datastore["id"])
    assert len(demo["entity_map"]) == 10
    before = head(api)
    saved = api.post("/graph/sub_graph", {"unsaved_entities": demo["entity_map"],
                                          "related_entity_data": parent_of("datastore", datastore["id"], demo)})
    assert saved.keys() == demo["entity_map"].keys()
    new_id = {key.split("-", 1)[1]: entity["id"] for key, entity in saved.items()}
    events = dart.store.read_all(before, 100)
    assert len({e.global_position for e in events}) == 10 and {e.type for e in events} == {
        "WorkflowCreated", "ActionCreated", "TriggerCreated"}
    assert [e.global_position for e in events] == list(range(events[0].global_position, events[0].global_position + 10))
    flows = [e for k, e in saved.items() if k.startswith("workflow-")]
    assert {f["data"]["datastore_id"] for f in flows} == {datastore["id"]}
    assert {f["data"]["state"] for f in flows} == {"ACTIVE"}
    for key, entity in saved.items():
        sent = demo["entity_map"][key]["data"]
        if key.startswith("action-"):
            assert entity["data"]["workflow_id"] == new_id[sent["workflow_id"]]
            assert entity["data"]["state"] == "TEMPLATE"
        if key.startswith("trigger-"):
            assert entity["data"]["workflow_ids"] == [new_id[sent["workflow_ids"][0]]]
            assert entity["data"]["args"]["completed_workflow_id"] == new_id[sent["args"]["completed_workflow_id"]]
    graph = api.get(f"/graph/datastore/{datastore['id']}")
    assert {n["entity_id"] for n in graph["nodes"]} >= {e["id"] for e in saved.values()}


def test_one_bad_entity_saves_nothing_and_names_the_entity_and_field(api: Api, datastore: dict[str, Any]) -> None:
    demo = recipe(api, "workflow chaining demo", related_type="datastore", related_id=datastore["id"])
    entities = copy.deepcopy(demo["entity_map"])
    bad_key = max(k for k in entities if k.startswith("action-"))
    entities[bad_key]["data"]["action_type_name"] = "no_such_action"
    related = parent_of("datastore", datastore["id"], demo)
    workflows_before = api.request("GET", "/workflow", params={"limit": 0})[1]["total"]
    before = head(api)
    status, body = api.request("POST", "/graph/sub_graph", {"unsaved_entities": entities,
                                                           "related_entity_data": related})
    assert status == 400 and body["error_message"].startswith(f"{bad_key}: action_type_name: "), body
    assert head(api) == before
    assert api.request("GET", "/workflow", params={"limit": 0})[1]["total"] == workflows_before
    entities = copy.deepcopy(demo["entity_map"])
    flow_key = next(k for k in entities if k.startswith("workflow-"))
    entities[flow_key]["data"]["name"] = "not a name!"
    status, body = api.request("POST", "/graph/sub_graph", {"unsaved_entities": entities,
                                                           "related_entity_data": related})
    assert status == 400 and body["error_message"].startswith(f"{flow_key}: ") and "name" in body["error_message"]
    status, body = api.request("POST", "/graph/sub_graph", {"unsaved_entities": demo["entity_map"]})  # no parent
    assert status == 400 and "related_entity_data names no datastore-PARENT-1" in body["error_message"]
    assert head(api) == before


def test_references_to_unknown_placeholders_and_bad_bodies_are_400s(api: Api, datastore: dict[str, Any]) -> None:
    before = head(api)
    cases = [
        ({"unsaved_entities": {"workflow-UNSAVED-a": {"data": {"name": "w", "datastore_id": "UNSAVED-missing"}}}},
         "workflow-UNSAVED-a: datastore_id: 'UNSAVED-missing' is not a datastore of unsaved_entities"),
        ({"unsaved_entities": {"workflow-UNSAVED-a": {"data": {"name": "w", "datastore_id": "NOSUCHDS00"}}}},
         "workflow-UNSAVED-a: datastore 'NOSUCHDS00' does not exist"),
        ({"unsaved_entities": {"flow-UNSAVED-a": {"data": {}}}}, "unsaved_entities: 'flow-UNSAVED-a' is not"),
        ({"unsaved_entities": {"event-UNSAVED-a": {"data": {"name": "e"}, "extra": 1}}},
         "event-UNSAVED-a: body: unknown field(s): extra"),
        ({"unsaved_entities": []}, "unsaved_entities: required"),
        ({"unsaved_entities": {}, "more": 1}, "body: unknown field(s): more"),
    ]
    for sent, message in cases:
        status, body = api.request("POST", "/graph/sub_graph", sent)
        assert status == 400 and body["error_message"].startswith(message), (sent, body)
    assert head(api) == before
    assert api.post("/graph/sub_graph", {"unsaved_entities": {}}) == {}


def test_a_new_workflow_joins_its_parent_trigger_and_a_new_trigger_its_super_trigger(api: Api,
                                                                                    datastore: dict[str, Any]) -> None:
    first = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": unique("wf")}})
    completion = api.post("/trigger", {"data": {"name": unique("t"), "trigger_type_name": "workflow_completion",
                                                "workflow_ids": [], "args": {"completed_workflow_id": first["id"]}}})
    event = api.post("/event", {"data": {"name": unique("e")}})
    other = api.post("/trigger", {"data": {"name": unique("t"), "trigger_type_name": "event", "workflow_ids": [],
                                           "args": {"event_id": event["id"]}}})
    super_trigger = api.post("/trigger", {"data": {"name": unique("s"), "trigger_type_name": "super",
                                                   "workflow_ids": [], "args": {"fire_after": "ANY",
                                                                                "completed_trigger_ids": [other["id"]]}}})
    body = {
        "unsaved_entities": {
            "workflow-UNSAVED-w": {"data": {"name": unique("next"), "datastore_id": datastore["id"]}},
            "trigger-UNSAVED-t": {"data": {"name": unique("t"), "trigger_type_name": "event", "workflow_ids": [],
                                           "args": {"event_id": event["id"]}}},
        },
        "related_entity_data": {
            "trigger-PARENT-x": {"entity_id": completion["id"], "entity_type": "trigger", "relationship": "PARENT",
                                 "edge": {"source_type": "trigger", "source_id": "PARENT-x",
                                          "destination_type": "workflow", "destination_id": "UNSAVED-w"}},
            "trigger-CHILD-y": {"entity_id": super_trigger["id"], "entity_type": "trigger", "relationship": "CHILD",
                                "edge": {"source_type": "trigger", "source_id": "UNSAVED-t",
                                         "destination_type": "trigger", "destination_id": "CHILD-y"}},
        },
    }
    saved = api.post("/graph/sub_graph", body)
    assert api.get(f"/trigger/{completion['id']}")["data"]["workflow_ids"] == [saved["workflow-UNSAVED-w"]["id"]]
    assert api.get(f"/trigger/{super_trigger['id']}")["data"]["args"]["completed_trigger_ids"] == [
        other["id"], saved["trigger-UNSAVED-t"]["id"]]
    body["related_entity_data"]["trigger-CHILD-y"]["entity_id"] = completion["id"]  # not a super trigger
    status, answer = api.request("POST", "/graph/sub_graph", body)
    assert status == 400 and "not a super trigger" in answer["error_message"]


def test_subgraph_definitions_are_entities_of_their_engine(api: Api, dart: InProcessDart) -> None:
    copy_engine = api.post("/engine", {"data": {**copy.deepcopy(NO_OP_ENGINE), "name": unique("noop")}})
    created = api.post(f"/engine/{copy_engine['id']}/subgraph_definition",
                       {"data": {**workflow_chaining_demo(), "engine_name": "someone_else"}})
    assert created["data"]["engine_name"] == copy_engine["data"]["name"]
    assert api.get(f"/subgraph_definition/{created['id']}") == created
    assert [d["id"] for d in api.get(f"/engine/{copy_engine['id']}/subgraph_definition")] == [created["id"]]
    assert [e["type"] for e in api.get(f"/subgraph_definition/{created['id']}/history")] == [
        "SubgraphDefinitionCreated"]
    bad = workflow_chaining_demo()
    bad["actions"][0]["data"]["action_type_name"] = "no_such_action"
    status, body = api.request("POST", f"/engine/{copy_engine['id']}/subgraph_definition", {"data": bad})
    assert status == 400 and body["error_message"].startswith("action_type_name: unknown action: 'no_such_action'")
    key, secret = create_api_key(dart.store, "editor@x", "editor")
    assert api.as_key(key, secret).request("DELETE", f"/subgraph_definition/{created['id']}")[0] == 403
    second = api.post(f"/engine/{copy_engine['id']}/subgraph_definition", {"data": workflow_chaining_demo()})
    api.delete(f"/subgraph_definition/{created['id']}")
    assert api.request("GET", f"/subgraph_definition/{created['id']}")[0] == 404
    api.delete(f"/engine/{copy_engine['id']}")  # its definitions go with it
    assert api.request("GET", f"/subgraph_definition/{second['id']}")[0] == 404


def test_saving_needs_an_editor_and_reading_a_viewer(api: Api, dart: InProcessDart) -> None:
    viewer = api.as_key(*create_api_key(dart.store, "viewer@x", "viewer"))
    operator = api.as_key(*create_api_key(dart.store, "operator@x", "operator"))
    editor = api.as_key(*create_api_key(dart.store, "editor2@x", "editor"))
    body = {"unsaved_entities": {"event-UNSAVED-e": {"data": {"name": unique("e")}}}}
    assert viewer.request("GET", "/graph/sub_graph")[0] == 200
    assert viewer.request("POST", "/graph/sub_graph", body)[0] == 403
    assert operator.request("POST", "/graph/sub_graph", body)[0] == 403
    saved = editor.post("/graph/sub_graph", body)
    assert saved["event-UNSAVED-e"]["data"]["user_id"] == "editor2@x"


def test_a_child_recipe_and_a_top_level_recipe_save_as_their_creates_would(api: Api, datastore: dict[str, Any]) -> None:
    flow = api.post(f"/datastore/{datastore['id']}/workflow", {"data": {"name": unique("wf")}})
    scheduled = recipe(api, "scheduled trigger", related_type="workflow", related_id=flow["id"])
    ((key, trigger),) = scheduled["entity_map"].items()
    trigger["data"].update(state="ACTIVE", args={"cron_pattern": "0 12 ? * 2 *"})
    saved = api.post("/graph/sub_graph", {"unsaved_entities": scheduled["entity_map"],
                                          "related_entity_data": parent_of("workflow", flow["id"], scheduled)})
    assert saved[key]["data"]["workflow_ids"] == [flow["id"]] and saved[key]["data"]["state"] == "ACTIVE"
    top = recipe(api, "datastore", engine_name="no_op_engine")
    ((key, store),) = top["entity_map"].items()
    store["data"]["args"] = {"action_sleep_time_in_seconds": 0}
    created = api.post("/graph/sub_graph", {"unsaved_entities": top["entity_map"]})[key]
    assert created["data"]["s3_artifacts_path"].endswith(f"/artifacts/{created['id']}")  # as POST /datastore sets
    assert api.get(f"/datastore/{created['id']}") == created
