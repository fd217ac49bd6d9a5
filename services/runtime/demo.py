"""``dart demo``: the original's "workflow chaining demo" (its no_op engine's subgraph, reference §5.10, §12.1)
created over the REST API of a running dart, then started by a manual trigger: a no_op datastore, workflow 1
with four succeeding actions, workflow 2 with two succeeding actions and one failing one, and a
workflow_completion trigger that starts workflow 2 when workflow 1 completes."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NO_OP = "no_op_engine"
SUCCEEDS, FAILS = "fake_action_that_succeeds", "fake_action_that_fails"
FINISHED = ("COMPLETED", "FAILED")


class DemoError(Exception):
    """The demo could not be created or run; the message says why."""


@dataclass(frozen=True)
class Demo:
    datastore_id: str
    workflow_ids: tuple[str, str]
    trigger_id: str
    instance_id: str | None  # workflow 1's run, when started


class RestClient:
    """Just enough of a REST client for the demo (the API's envelope: ``{"results": ...}``)."""

    def __init__(self, api_url: str, key: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.auth = "Basic " + base64.b64encode(key.encode()).decode()

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
             whole: bool = False) -> Any:
        """The answer's ``results`` (or, with ``whole``, the whole answer)."""
        query = "?" + urllib.parse.urlencode({k: json.dumps(v) if isinstance(v, list) else v
                                              for k, v in params.items()}) if params else ""
        request = urllib.request.Request(
            self.api_url + path + query, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": self.auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise DemoError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except OSError as exc:
            raise DemoError(f"{method} {path}: cannot reach dart at {self.api_url} ({exc}); is `dart up` running?"
                            ) from None
        return answer if whole or not isinstance(answer, dict) else answer.get("results")


def api_key(explicit: str | None, bootstrap: str, home: Path) -> str:
    """The key a command of this machine uses: ``--key``, else DART_BOOTSTRAP_API_KEY, else the one the first
    ``dart up`` saved in ``$DART_HOME/credentials``."""
    key = explicit or bootstrap
    credentials = home / "credentials"
    if not key and credentials.is_file():
        key = credentials.read_text().strip()
    if not key:
        raise ValueError(f"no API key: pass --key key:secret, or set DART_BOOTSTRAP_API_KEY, or start `dart up` "
                         f"once (it saves one to {credentials})")
    return key


def _action(name: str, action_type: str, order: int, **extra: Any) -> dict[str, Any]:
    return {"data": {"name": name, "action_type_name": action_type, "engine_name": NO_OP, "order_idx": order,
                     **extra}}


def create_demo(client: RestClient, sleep_seconds: int = 1, run: bool = True) -> Demo:
    """Create the demo's entities (names end with a fresh suffix, so it can be created again) and, with
    ``run``, start workflow 1 by hand. The failing action says ``on_failure: CONTINUE``: in the original it
    deactivated workflow 2 and the datastore, so its demo ran once; here both runs complete and the failure
    is still there to see."""
    if not client.call("GET", "/engine", params={"filters": [f"name = {NO_OP}"]}):
        raise DemoError(f"the {NO_OP} is not registered: `dart up` registers it at start")
    suffix = uuid.uuid4().hex[:6]
    datastore = client.call("POST", "/datastore", {"data": {
        "name": f"no-op-demo-{suffix}", "engine_name": NO_OP, "state": "ACTIVE",
        "args": {"action_sleep_time_in_seconds": sleep_seconds}}})
    flows = []
    for number in (1, 2):
        flows.append(client.call("POST", f"/datastore/{datastore['id']}/workflow", {"data": {
            "name": f"no-op-workflow-chaining-wf{number}-{suffix}", "state": "ACTIVE"}}))
    client.call("POST", f"/workflow/{flows[0]['id']}/action", [_action(SUCCEEDS, SUCCEEDS, i) for i in (1, 2, 3, 4)])
    client.call("POST", f"/workflow/{flows[1]['id']}/action", [
        _action(SUCCEEDS, SUCCEEDS, 1), _action(SUCCEEDS, SUCCEEDS, 2),
        _action(FAILS, FAILS, 3, on_failure="CONTINUE")])
    trigger = client.call("POST", "/trigger", {"data": {
        "name": f"no-op-trigger-workflow-completion-{suffix}", "trigger_type_name": "workflow_completion",
        "state": "ACTIVE", "workflow_ids": [flows[1]["id"]], "args": {"completed_workflow_id": flows[0]["id"]}}})
    instance_id = None
    if run:
        started = client.call("POST", f"/workflow/{flows[0]['id']}/do-manual-trigger", None, whole=True)
        instance_id = started.get("workflow_instance_id")
    return Demo(datastore["id"], (flows[0]["id"], flows[1]["id"]), trigger["id"], instance_id)


def wait_for_runs(client: RestClient, demo: Demo, timeout: float = 300.0,
                  sleep: Callable[[float], Any] = time.sleep) -> list[str]:
    """Wait until both workflows have a finished run; their states (workflow 1's, then workflow 2's)."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for workflow_id in demo.workflow_ids:
            runs = client.call("GET", f"/workflow/{workflow_id}/instance")
            states.append(runs[0]["data"]["state"] if runs else "NOT STARTED")
        if all(s in FINISHED for s in states) or time.monotonic() > deadline:
            return states
        sleep(0.5)
