"""The client cannot drift from the server: its typed models are what the generator makes of the running
server's OpenAPI document (regenerate: ``python -m services.client.codegen --token KEY:SECRET``), its event and
key shapes are the document's, and every operation of the document has a client call (a new route fails this
test until the client covers it)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.client import ApiKey, Dart, LoggedEvent
from services.client import codegen
from tests.e2e.conftest import KEY, SECRET, RunningDart

MODELS = Path(codegen.__file__).with_name("models.py")
# Every operation of the document -> the client call that makes it ("<kind>" covers each entity kind's path).
COVERED = {
    "GET /{kind}": "Entities.list", "POST /{kind}": "Entities.create", "GET /{kind}/{id}": "Entities.get",
    "PUT /{kind}/{id}": "Entities.update", "PATCH /{kind}/{id}": "Entities.patch",
    "DELETE /{kind}/{id}": "Entities.delete", "GET /{kind}/{id}/history": "Entities.history",
    "POST /datastore/{id}/workflow": "Entities.create", "POST /dataset/{id}/subscription": "Entities.create",
    "POST /workflow/{id}/action": "Entities.create_many", "POST /datastore/{id}/action": "Entities.create_many",
    "GET /dataset/guess": "Dart.guess_dataset",
    "GET /subscription/{id}/element_stats": "Dart.subscription_element_stats",
    "GET /subscription/{id}/elements": "Dart.subscription_elements",
    "GET /subscription/{id}/element_history": "Dart.subscription_element_history",
    "GET /action/{id}/subscription/elements": "DartClient.subscription_elements",  # an engine's (engines/sdk.py)
    "GET /workflow/{id}/instance": "Dart.workflow_instances", "DELETE /workflow/{id}/instance":
        "Dart.delete_workflow_instances",
    "GET /trigger_type": "Dart.trigger_types", "GET /log": "Dart.log", "GET /log/stream": "Dart.stream",
    "GET /graph/entity_identifiers": "Graph.identifiers", "GET /graph/{kind}/{id}": "Graph.of",
    "GET /graph/sub_graph": "Graph.recipes", "POST /graph/sub_graph": "Graph.save",
    "GET /engine/{id}/subgraph_definition": "Graph.definitions",
    "POST /engine/{id}/subgraph_definition": "Graph.create_definition",
    "GET /subgraph_definition/{id}": "Graph.definition", "DELETE /subgraph_definition/{id}": "Graph.delete_definition",
    "GET /subgraph_definition/{id}/history": "Graph.definition_history",
    "GET /api_key": "Keys.list", "POST /api_key": "Keys.create", "GET /api_key/{id}": "Keys.get",
    "DELETE /api_key/{id}": "Keys.revoke", "GET /api_key/{id}/history": "Keys.history",
    "PUT /engine/action/{id}/checkout": "DartClient.checkout", "PUT /engine/action/{id}/checkin": "DartClient.checkin",
    "GET /schema/{any}": "Dart.schema",
    "POST /workflow/{id}/do-manual-trigger": "Dart.trigger_workflow",
    "POST /workflow/instance/{id}/cancel": "Dart.cancel_instance", "GET /action/{id}/logs": "Dart.action_logs",
    "POST /trigger/{id}/pause": "Dart.pause_trigger", "POST /trigger/{id}/unpause": "Dart.unpause_trigger",
    "POST /trigger/{id}/backfill": "Dart.backfill", "POST /event/{id}/fire": "Dart.fire_event",
    "GET /whoami": "Dart.whoami", "GET /health": "Dart.health", "GET /ready": "Dart.health",
}
KINDS = ("engine", "dataset", "datastore", "action", "workflow/instance", "workflow", "trigger", "subscription",
         "event")


@pytest.fixture(scope="module")
def sqlite_dart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    running = RunningDart(tmp_path_factory.mktemp("dart-client-models"), None)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def document(sqlite_dart: RunningDart) -> dict:
    return Dart(f"{sqlite_dart.base}/api/1", f"{KEY}:{SECRET}").openapi()


def test_the_models_are_what_the_generator_makes_of_the_servers_document(sqlite_dart: RunningDart) -> None:
    client = Dart(f"{sqlite_dart.base}/api/1", f"{KEY}:{SECRET}")
    generated = codegen.render(codegen.fields_from(client.transport))
    assert generated == MODELS.read_text(), (
        "services/client/models.py is out of date with the server's schemas: run `dart up`, then "
        "`python -m services.client.codegen --token KEY:SECRET`")


def test_the_event_and_key_shapes_are_the_documents(document: dict) -> None:
    history = document["paths"]["/api/1/workflow/{entity_id}/history"]["get"]["responses"]["200"]
    event = history["content"]["application/json"]["schema"]["properties"]["results"]["items"]
    assert {f.name for f in dataclasses.fields(LoggedEvent)} == set(event["required"])
    keys = document["paths"]["/api/1/api_key"]["post"]["responses"]["200"]
    created = keys["content"]["application/json"]["schema"]["properties"]["results"]
    assert {f.name for f in dataclasses.fields(ApiKey)} == set(created["properties"])


def _template(method: str, path: str) -> str:
    path = path.removeprefix("/api/1")
    path = re.sub(r"\{[a-z_]+\}", "{id}", path)
    if path.startswith("/schema/"):
        return f"{method} /schema/{{any}}"
    if re.fullmatch(r"/graph/[a-z_]+/\{id\}", path) and path != "/graph/sub_graph":
        return f"{method} /graph/{{kind}}/{{id}}"
    for kind in KINDS:
        for form in (f"/{kind}", f"/{kind}/{{id}}", f"/{kind}/{{id}}/history"):
            if path == form and f"{method} {path.replace(f'/{kind}', '/{kind}', 1)}" in COVERED:
                return f"{method} {path.replace(f'/{kind}', '/{kind}', 1)}"
    return f"{method} {path}"


def test_every_operation_of_the_document_has_a_client_call(document: dict) -> None:
    from engines.sdk import DartClient
    from services.client.client import Dart as DartClass
    from services.client.entities import Entities
    from services.client.graph import Graph
    from services.client.keys import Keys

    owners = {"Dart": DartClass, "Entities": Entities, "Graph": Graph, "Keys": Keys, "DartClient": DartClient}
    operations = {_template(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    uncovered = sorted(operations - set(COVERED))
    assert not uncovered, f"operations the client has no call for (add one, and a row to COVERED): {uncovered}"
    for call in COVERED.values():
        owner, method = call.split(".")
        assert callable(getattr(owners[owner], method, None)), f"{call} is named in COVERED but does not exist"
