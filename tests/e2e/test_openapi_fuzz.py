"""schemathesis over the OpenAPI document, against a running dart: no 5xx, and every response (status,
content type, body, headers) as the document says."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness.api_client import Api
from engines.no_op.definition import NO_OP_ENGINE
from tests.e2e.conftest import KEY, SECRET, RunningDart

# The budget: every operation of the document, this many generated cases each (plus the coverage and stateful
# phases), with a fixed seed; about a minute per store on a 2-core machine.
MAX_EXAMPLES = 25
# positive_data_acceptance and negative_data_rejection are heuristics (a random id is a 404; an empty
# object parameter is indistinguishable from an absent one); the checks kept are the document's contract.
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance," \
         "response_headers_conformance,unsupported_method,missing_required_header,ignored_auth"


def test_openapi_document_is_served_without_a_key_and_lists_every_route(dart: RunningDart) -> None:
    status, doc = Api(dart.base + "/api/1", None, None).request("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert "/api/1/engine/action/{entity_id}/checkout" in doc["paths"]
    assert "/api/1/workflow/{entity_id}/instance" in doc["paths"]
    for path in doc["paths"].values():
        for operation in path.values():
            if operation.get("security") == []:
                continue
            assert {"400", "401", "404"} <= set(operation["responses"]), operation["operationId"]
    swagger = Api(dart.base + "/api/1", None, None).request("GET", "/swagger.json")[1]
    assert swagger["paths"].keys() == doc["paths"].keys()


def test_schemathesis_finds_no_server_error_and_no_response_off_the_document(dart: RunningDart, tmp_path: Path) -> None:
    api = dart.api()
    api.post("/engine", {"data": copy.deepcopy(NO_OP_ENGINE)})
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    result = subprocess.run(
        [cli, "run", f"{dart.base}/api/1/openapi.json", "-H", f"Authorization: Bearer {KEY}:{SECRET}",
         "--max-examples", str(MAX_EXAMPLES), "--checks", CHECKS, "--seed", "7", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
    )
    errors = [line for line in (dart.home / "dart.log").read_text().splitlines() if "unhandled error" in line]
    assert result.returncode == 0, result.stdout[-6000:] + "\n".join(errors[:3])
    assert not errors
