"""The graph API (reference §5.10, §3.13, §15.4): the search box's identifiers and the graph around each kind of
entity over one small chain, with entities of a second, unrelated chain on the same engine that must never
show (their names end in ``-no-show``, as in the original's graph acceptance test)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from engines.no_op.definition import NO_OP_ENGINE
from tests.api.both_stores import started
from tests.api.conftest import Api, InProcessDart, unique
from tests.support.stores import BACKENDS


@dataclass
class Chain:
    ids: dict[str, str]  # label -> entity id


def _datastore(api: Api, name: str, state: str = "TEMPLATE") -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": name, "engine_name": "no_op_engine", "state": state,
                                            "args": {"action_sleep_time_in_seconds": 0}}})


@pytest.fixture(scope="module", params=BACKENDS)
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessDart]:
    """The app on SQLite, then on a fresh PostgreSQL database (the graph's queries differ by dialect)."""
    with started(request.param, tmp_path_factory.mktemp(f"graph-{request.param}")) as running:
        yield running


@pytest.fixture(scope="module")
def api(dart: InProcessDart) -> Api:
    return dart.api


@pytest.fixture(scope="module")
def chain(api: Api) -> Chain:
    """dataset -> subscription; datastore -> wf1 (a load of the dataset, a copy into the dataset's location, a
    succeeding action) -> completion trigger -> wf2; event -> event trigger -> wf1; super trigger over both
    triggers -> wf2. Beside it, on the same engine: a datastore, workflow, dataset and event that must not show."""
    if not api.request("GET", "/engine", params={"filters": ["name = no_op_engine"]})[1]["results"]:
        api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    tag = unique("g")
    ids: dict[str, str] = {}
    location = f"s3://graph-test/{tag}/data"
    ids["dataset"] = api.post("/dataset", {"data": {
        "name": f"{tag}-dataset", "table_name": "t", "location": location, "load_type": "INSERT",
        "data_format": {"file_format": "PARQUET", "row_format": "NONE"},
        "columns": [{"name": "c1", "data_type": "VARCHAR", "length": 50}]}})["id"]
    ids["other_dataset"] = api.post("/dataset", {"data": {
        "name": f"{tag}-dataset2-no-show", "table_name": "t", "location": f"s3://graph-test/{tag}/other",
        "load_type": "INSERT", "data_format": {"file_format": "PARQUET", "row_format": "NONE"},
        "columns": [{"name": "c1", "data_type": "VARCHAR", "length": 50}]}})["id"]
    ids["subscription"] = api.post(f"/dataset/{ids['dataset']}/subscription",
                                   {"data": {"name": f"{tag}-subscription"}})["id"]
    ids["datastore"] = _datastore(api, f"{tag}-datastore")["id"]
    ids["other_datastore"] = _datastore(api, f"{tag}-datastore2-no-show")["id"]
    ids["wf1"] = api.post(f"/datastore/{ids['datastore']}/workflow", {"data": {"name": f"{tag}-wf1"}})["id"]
    ids["wf2"] = api.post(f"/datastore/{ids['datastore']}/workflow", {"data": {"name": f"{tag}-wf2"}})["id"]
    ids["other_wf"] = api.post(f"/datastore/{ids['other_datastore']}/workflow",
                               {"data": {"name": f"{tag}-wf3-no-show"}})["id"]
    load, copy_into, succeed = api.post(f"/workflow/{ids['wf1']}/action", [
        {"data": {"name": "load", "action_type_name": "fake_load_dataset", "args": {"dataset_id": ids["dataset"]}}},
        {"data": {"name": "copy", "action_type_name": "fake_copy_hdfs_to_s3",
                  "args": {"source_hdfs_path": "hdfs:///x", "destination_s3_path": location + "/part"}}},
        {"data": {"name": "ok", "action_type_name": "fake_action_that_succeeds"}}])
    ids.update(load=load["id"], copy=copy_into["id"], succeed=succeed["id"])
    ids["other_action"] = api.post(f"/workflow/{ids['other_wf']}/action", [{"data": {
        "name": "load-no-show", "action_type_name": "fake_load_dataset",
        "args": {"dataset_id": ids["other_dataset"]}}}])[0]["id"]
    ids["event"] = api.post("/event", {"data": {"name": f"{tag}-event", "state": "ACTIVE"}})["id"]
    ids["other_event"] = api.post("/event", {"data": {"name": f"{tag}-event2-no-show", "state": "ACTIVE"}})["id"]
    ids["completion"] = api.post("/trigger", {"data": {
        "name": f"{tag}-completion", "trigger_type_name": "workflow_completion", "workflow_ids": [ids["wf2"]],
        "args": {"completed_workflow_id": ids["wf1"]}}})["id"]
    ids["event_trigger"] = api.post("/trigger", {"data": {
        "name": f"{tag}-event-trigger", "trigger_type_name": "event", "workflow_ids": [ids["wf1"]],
        "args": {"event_id": ids["event"]}}})["id"]
    ids["other_trigger"] = api.post("/trigger", {"data": {
        "name": f"{tag}-event-trigger2-no-show", "trigger_type_name": "event", "workflow_ids": [ids["other_wf"]],
        "args": {"event_id": ids["other_event"]}}})["id"]
    ids["super"] = api.post("/trigger", {"data": {
        "name": f"{tag}-super", "trigger_type_name": "super", "workflow_ids": [ids["wf2"]],
        "args": {"fire_after": "ALL", "completed_trigger_ids": [ids["completion"], ids["event_trigger"]]}}})["id"]
    return Chain(ids)


def _graph(api: Api, entity_type: str, entity_id: str) -> tuple[set[tuple[str, str]], set[tuple[str, str, str, str]],
                                                             list[dict[str, Any]]]:
    graph = api.get(f"/graph/{entity_type}/{entity_id}")
    nodes = {(n["entity_type"], n["entity_id"]) for n in graph["nodes"]}
    edges = {(e["source_type"], e["source_id"], e["destination_type"], e["destination_id"]) for e in graph["edges"]}
    for e in edges:  # every edge joins two nodes of the graph
        assert (e[0], e[1]) in nodes and (e[2], e[3]) in nodes, e
    return nodes, edges, graph["nodes"]


def test_every_entity_type_of_the_chain_gives_the_whole_chain_and_nothing_else(api: Api, chain: Chain) -> None:
    i = chain.ids
    chain_nodes = {("dataset", i["dataset"]), ("subscription", i["subscription"]), ("datastore", i["datastore"]),
                   ("workflow", i["wf1"]), ("workflow", i["wf2"]), ("action", i["load"]), ("action", i["copy"]),
                   ("action", i["succeed"]), ("event", i["event"]), ("trigger", i["completion"]),
                   ("trigger", i["event_trigger"]), ("trigger", i["super"])}
    for entity_type, label in (("dataset", "dataset"), ("subscription", "subscription"), ("workflow", "wf1"),
                               ("workflow", "wf2"), ("action", "load"), ("event", "event"),
                               ("trigger", "completion"), ("trigger", "super"), ("datastore", "datastore")):
        nodes, _, served = _graph(api, entity_type, i[label])
        assert served[0]["entity_type"] == entity_type and served[0]["entity_id"] == i[label]  # the root first
        assert not [n for n in served if str(n["name"]).endswith("-no-show")], (entity_type, served)
        assert nodes == chain_nodes, (entity_type, label, nodes ^ chain_nodes)


def test_edges_follow_the_originals_relationships(api: Api, chain: Chain) -> None:
    i = chain.ids
    _, edges, served = _graph(api, "workflow", i["wf1"])
    assert edges == {
        ("dataset", i["dataset"], "subscription", i["subscription"]),
        ("dataset", i["dataset"], "action", i["load"]),  # args.dataset_id
        ("dataset", i["dataset"], "action", i["copy"]),  # destination_s3_path under the dataset's location
        ("workflow", i["wf1"], "action", i["load"]), ("workflow", i["wf1"], "action", i["copy"]),
        ("workflow", i["wf1"], "action", i["succeed"]),
        ("datastore", i["datastore"], "workflow", i["wf1"]), ("datastore", i["datastore"], "workflow", i["wf2"]),
        ("workflow", i["wf1"], "trigger", i["completion"]), ("trigger", i["completion"], "workflow", i["wf2"]),
        ("event", i["event"], "trigger", i["event_trigger"]), ("trigger", i["event_trigger"], "workflow", i["wf1"]),
        ("trigger", i["completion"], "trigger", i["super"]), ("trigger", i["event_trigger"], "trigger", i["super"]),
        ("trigger", i["super"], "workflow", i["wf2"]),
    }
    by_id = {n["entity_id"]: n for n in served}
    assert by_id[i["load"]] == {"entity_type": "action", "entity_id": i["load"], "name": "load", "state": "TEMPLATE",
                                "sub_type": "fake_load_dataset"}
    assert by_id[i["datastore"]]["sub_type"] == "no_op_engine" and by_id[i["datastore"]]["state"] == "TEMPLATE"
    assert by_id[i["super"]]["sub_type"] == "super" and by_id[i["super"]]["state"] == "INACTIVE"
    assert by_id[i["dataset"]]["state"] is None and by_id[i["dataset"]]["sub_type"] is None


def test_a_datastores_other_workflows_show_only_from_the_datastore(api: Api, chain: Chain) -> None:
    i = chain.ids
    extra = api.post(f"/datastore/{i['datastore']}/workflow", {"data": {"name": unique("lonely")}})
    from_store, _, _ = _graph(api, "datastore", i["datastore"])
    from_workflow, _, _ = _graph(api, "workflow", i["wf1"])
    assert ("workflow", extra["id"]) in from_store
    assert ("workflow", extra["id"]) not in from_workflow  # no leak through the shared datastore
    api.delete(f"/workflow/{extra['id']}")


def test_instances_and_their_actions_join_their_workflow(api: Api, chain: Chain) -> None:
    store = _datastore(api, unique("active"), "ACTIVE")
    flow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": unique("run"), "state": "ACTIVE"}})
    api.post(f"/workflow/{flow['id']}/action", [{"data": {"name": "a", "action_type_name": "fake_action_that_succeeds"}}])
    status, started = api.request("POST", f"/workflow/{flow['id']}/do-manual-trigger")
    assert status == 200, started
    instance_id = started["workflow_instance_id"]
    nodes, edges, _ = _graph(api, "workflow", flow["id"])
    assert ("workflow_instance", instance_id) in nodes
    assert ("workflow", flow["id"], "workflow_instance", instance_id) in edges
    run_actions = [e[3] for e in edges if e[:2] == ("workflow_instance", instance_id)]
    assert len(run_actions) == 1 and api.get(f"/action/{run_actions[0]}")["data"]["workflow_instance_id"] == instance_id
    one_off = api.post(f"/datastore/{store['id']}/action", {"data": {
        "name": "adhoc", "action_type_name": "fake_action_that_succeeds"}})[0]
    nodes, edges, _ = _graph(api, "datastore", store["id"])
    assert ("datastore", store["id"], "action", one_off["id"]) in edges


def test_entity_identifiers_match_ids_and_names_in_any_case(api: Api, chain: Chain) -> None:
    i = chain.ids
    name = api.get(f"/workflow/{i['wf1']}")["data"]["name"]
    found = api.get("/graph/entity_identifiers", params={"search": name.upper()})
    assert {"entity_type": "workflow", "entity_id": i["wf1"], "name": name} in found
    by_id = api.get("/graph/entity_identifiers", params={"search": i["load"].lower()})
    assert [f["entity_id"] for f in by_id] == [i["load"]]  # a TEMPLATE action, by its id
    assert api.get("/graph/entity_identifiers", params={"search": "%_"}) == []  # LIKE's wildcards are literal
    marker = unique("many")
    for n in range(25):
        api.post("/event", {"data": {"name": f"{marker}-{n}"}})
    assert len(api.get("/graph/entity_identifiers", params={"search": marker})) == 20  # at most 20
    status, body = api.request("GET", "/graph/entity_identifiers")
    assert status == 400 and body["error_message"].startswith("search:")


def test_an_unknown_entity_is_a_404_and_a_viewer_may_read(api: Api, dart: Any, chain: Chain) -> None:
    status, body = api.request("GET", "/graph/workflow/NOSUCHWF00")
    assert status == 404 and "NOSUCHWF00" in body["error_message"]
    from services.commands.auth import create_api_key

    key, secret = create_api_key(dart.store, "viewer@x", "viewer")
    viewer = api.as_key(key, secret)
    assert viewer.get(f"/graph/trigger/{chain.ids['super']}")["nodes"]


def test_the_walk_in_sql_finds_what_the_walk_in_memory_finds(api: Api, chain: Chain,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Past CAP definitions of a kind the walk goes level by level in SQL: the same graph."""
    from projections import graph_index

    roots = [("workflow", "wf1"), ("dataset", "dataset"), ("trigger", "super"), ("action", "copy"),
             ("subscription", "subscription"), ("event", "event"), ("datastore", "datastore")]
    in_memory = {label: _graph(api, t, chain.ids[label])[:2] for t, label in roots}
    monkeypatch.setattr(graph_index, "CAP", 0)
    for entity_type, label in roots:
        assert _graph(api, entity_type, chain.ids[label])[:2] == in_memory[label], label
