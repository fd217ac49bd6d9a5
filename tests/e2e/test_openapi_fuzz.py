"""schemathesis over the OpenAPI document, against a running dart: no 5xx, every response (status, content
type, body, headers) as the document says, and no request the document calls valid refused (but for the
refusals that depend on what the server holds: tests/e2e/fuzz_hooks.py names each)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness.api_client import Api
from tests.e2e.conftest import KEY, SECRET, RunningDart

# The budget: every operation of the document, this many generated cases each (plus the coverage and stateful
# phases; tests/e2e/schemathesis.toml keeps the coverage phase off three bodies that only ever meet a 404
# there), with a fixed seed; about two and a half minutes per store on a busy 2-core machine.
MAX_EXAMPLES = 20
# negative_data_rejection stays off: a heuristic (an empty object parameter is indistinguishable from an
# absent one). positive_data_acceptance runs as tests/e2e/fuzz_hooks.py's positive_data_acceptance_in_state.
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance," \
         "response_headers_conformance,unsupported_method,missing_required_header,ignored_auth," \
         "positive_data_acceptance_in_state"
ROOT = Path(__file__).resolve().parents[2]


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
    # dart up registered the built-in engines: the document describes a datastore for each
    body = doc["paths"]["/api/1/datastore"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    engines = {alt["properties"]["engine_name"]["const"] for alt in body["properties"]["data"]["anyOf"]}
    assert "no_op_engine" in engines
    swagger = Api(dart.base + "/api/1", None, None).request("GET", "/swagger.json")[1]
    assert swagger["paths"].keys() == doc["paths"].keys()


def test_schemathesis_finds_no_server_error_and_no_response_off_the_document(dart: RunningDart, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    result = subprocess.run(
        [cli, "--config-file", str(ROOT / "tests/e2e/schemathesis.toml"), "run",
         f"{dart.base}/api/1/openapi.json", "-H", f"Authorization: Bearer {KEY}:{SECRET}",
         "--max-examples", str(MAX_EXAMPLES), "--checks", CHECKS,
         "--seed", "7", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks", "PYTHONPATH": str(ROOT)},
    )
    errors = [line for line in (dart.home / "dart.log").read_text().splitlines() if "unhandled error" in line]
    # (without the hooks, schemathesis refuses the unknown check name: a non-zero exit too)
    failures = result.stdout[result.stdout.find("= FAILURES ="):][:6000]  # the failing cases, then the tail
    assert result.returncode == 0, failures + result.stdout[-2000:] + "\n".join(errors[:3])
    assert not errors
