"""The engine side of the protocol (reference §10, §12.1) with real processes: `dart up` on SQLite, and the
no_op engine run as `python -m engines.no_op` with only the engine environment (design.md §4) to go on.

dart's launcher starts engines only for ACTIVE datastores. These tests keep their datastores INACTIVE and
do the launcher's part themselves: they append its `ActionPending` event to the store the server uses, then
start the engine. Everything after that goes over HTTP. The SDK's retry policy and paging are tested against
a tiny local HTTP server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engines.no_op.definition import NAME, no_op_engine
from engines.sdk import (
    EXIT_ACTION_FAILED,
    EXIT_CHECKOUT_FAILED,
    EXIT_SUCCEEDED,
    ActionContext,
    DartApiError,
    DartClient,
    NO_RETRIES,
    EngineEnvironment,
    RetryPolicy,
    run_action,
)
from events.errors import ConcurrencyError
from events.store import EventStore
from events.streams.action import ActionPending
from events.types import StreamAppend
from services.runtime.settings import load_settings
from services.runtime.composition import build
from bench.harness.api_client import Api
from tests.e2e.conftest import KEY, SECRET, RunningDart
from tests.e2e.flows import wait_for

REPO = Path(__file__).resolve().parents[2]
TOKEN = f"{KEY}:{SECRET}"
# Enough to ride out a slow CI machine, short enough that a real outage fails the test quickly.
TEST_RETRIES = RetryPolicy(total_seconds=10, initial_delay=0.05, max_delay=1)


@pytest.fixture(scope="module")
def dart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    running = RunningDart(tmp_path_factory.mktemp("dart-engine-sdk"), None)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def api(dart: RunningDart) -> Api:
    return dart.api()


@pytest.fixture(scope="module")
def api_url(dart: RunningDart) -> str:
    return dart.base + "/api/1"


@pytest.fixture(scope="module")
def client(api_url: str) -> DartClient:
    return DartClient(api_url, TOKEN, retries=TEST_RETRIES)


@pytest.fixture(scope="module")
def store(dart: RunningDart) -> Iterator[EventStore]:
    """The very SQLite store the server appends to, opened as the launcher would."""
    container = build(load_settings(env={"DART_HOME": str(dart.home)}), migrate=False)
    try:
        yield container.store
    finally:
        container.store.close()


def _engine_env(dart: RunningDart, api_url: str, action: dict[str, Any]) -> dict[str, str]:
    # Only the launcher's four variables: the engine must learn nothing else from dart's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
    env.update(DART_ACTION_ID=action["id"], DART_ACTION_USER_ID=action["data"]["user_id"],
               DART_API_URL=api_url, DART_API_TOKEN=TOKEN)
    return env


def _run_engine(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engines.no_op", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def engine(client: DartClient, dart: RunningDart, api_url: str, api: Api) -> dict[str, Any]:
    """Registered twice: by the SDK, then by the engine's own `register` command, which must update it."""
    first_body = no_op_engine()
    first_body["description"] = "an older registration"
    first = client.register_engine(first_body)
    assert first["data"]["description"] == "an older registration"

    env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
    done = _run_engine(env, "register", "--api-url", api_url, "--token", TOKEN)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == first["id"]

    found = api.request("GET", "/engine", params={"filters": [f"name = {NAME}"]})[1]
    assert found["total"] == 1
    current = found["results"][0]
    assert current["id"] == first["id"]
    assert current["data"]["description"] == no_op_engine()["description"]
    assert current["version_id"] > first["version_id"]
    return current


def _action(api: Api, engine: dict[str, Any], action_type: str, sleep: float = 0) -> dict[str, Any]:
    datastore = api.post("/datastore", {"data": {
        "name": f"ds_{uuid.uuid4().hex[:8]}", "engine_name": engine["data"]["name"], "state": "INACTIVE",
        "args": {"action_sleep_time_in_seconds": sleep},
    }})
    created = api.post(f"/datastore/{datastore['id']}/action", {"data": {
        "name": f"{action_type}_{uuid.uuid4().hex[:6]}", "action_type_name": action_type,
        "engine_name": engine["data"]["name"],
    }})
    return created[0]


def _make_pending(api: Api, store: EventStore, action_id: str) -> None:
    """Do the launcher's part. The orchestrator may be queueing the new action at the same moment, so an
    append that loses the race re-reads the version and tries again; each retry follows a real write."""
    for _ in range(20):
        version = api.get(f"/action/{action_id}")["version_id"]
        try:
            store.append(StreamAppend(f"action-{action_id}", version, [ActionPending({"state": "PENDING"})]))
            break
        except ConcurrencyError:
            continue
    else:
        pytest.fail(f"action {action_id} kept changing; it could not be made PENDING")
    assert api.get(f"/action/{action_id}")["data"]["state"] == "PENDING"


def _checked_in(api: Api, action_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The check-in event and the action as it was right after it. The orchestrator moves a FINISHING
    action on to COMPLETED or FAILED on its own schedule, so "right after" is read with as_of."""
    history = _history(api, action_id)
    checkins = [e for e in history if e["type"] == "ActionCheckedIn"]
    assert len(checkins) == 1, _types(history)
    as_of = api.get(f"/action/{action_id}", params={"as_of": checkins[0]["global_position"]})
    return checkins[0], as_of


def _history(api: Api, action_id: str) -> list[dict[str, Any]]:
    return api.get(f"/action/{action_id}/history", params={"limit": 1000})


def _types(history: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in history]


def test_register_engine_is_idempotent(engine: dict[str, Any], client: DartClient) -> None:
    again = client.register_engine(no_op_engine())
    assert again["id"] == engine["id"]
    assert client.find_engine(NAME)["id"] == engine["id"]  # type: ignore[index]
    assert client.find_engine("no_such_engine") is None


def test_no_op_engine_runs_a_succeeding_action(dart: RunningDart, api: Api, api_url: str, store: EventStore,
                                               engine: dict[str, Any]) -> None:
    action = _action(api, engine, "fake_action_that_succeeds", sleep=1)  # long enough to report halfway
    _make_pending(api, store, action["id"])

    done = _run_engine(_engine_env(dart, api_url, action))

    assert done.returncode == EXIT_SUCCEEDED, done.stderr
    checkin, after = _checked_in(api, action["id"])
    assert after["data"]["state"] == "FINISHING"
    assert after["data"]["progress"] == 0.5  # 1 comes with COMPLETED, not from the engine
    assert checkin["data"]["result"] == "COMPLETED" and checkin["data"]["error_message"] is None
    # The events carry the engine's credentials as their actor, as every API write does.
    assert checkin["metadata"]["actor"] == "admin"
    # Check-out, then progress, then the check-in, in that order on the action's stream.
    history = _history(api, action["id"])
    types = _types(history)
    checked_out, checked_in = types.index("ActionCheckedOut"), types.index("ActionCheckedIn")
    progress = [i for i, e in enumerate(history)
                if e["type"] == "ActionUpdated" and "progress" in e["data"]["changes"]]
    assert [history[i]["data"]["changes"]["progress"] for i in progress] == [0.5]
    assert checked_out < progress[0] and progress[-1] < checked_in
    # The orchestrator completes it: progress 1 with COMPLETED, the engine's result not undone.
    completed = wait_for(lambda: (a := api.get(f"/action/{action['id']}")["data"])["state"] != "FINISHING" and a,
                         what="the orchestrator completing the action")
    assert (completed["state"], completed["progress"]) == ("COMPLETED", 1)


def test_no_op_engine_checks_in_failure_with_the_traceback(dart: RunningDart, api: Api, api_url: str,
                                                           store: EventStore, engine: dict[str, Any]) -> None:
    action = _action(api, engine, "fake_action_that_fails")
    _make_pending(api, store, action["id"])

    done = _run_engine(_engine_env(dart, api_url, action))

    assert done.returncode == EXIT_ACTION_FAILED, done.stderr
    checkin, after = _checked_in(api, action["id"])
    assert after["data"]["state"] == "FINISHING"
    assert checkin["data"]["result"] == "FAILED"
    message = checkin["data"]["error_message"]
    assert f"{action['data']['name']} failed as expected" in message
    assert "Traceback (most recent call last)" in message and "ExpectedFailure" in message
    assert after["data"]["error_message"] == message
    assert api.get(f"/action/{action['id']}")["data"]["state"] in ("FINISHING", "FAILED")


def test_an_action_that_is_not_pending_cannot_be_checked_out(dart: RunningDart, api: Api, api_url: str,
                                                            engine: dict[str, Any]) -> None:
    action = _action(api, engine, "fake_action_that_succeeds")

    done = _run_engine(_engine_env(dart, api_url, action))

    assert done.returncode == EXIT_CHECKOUT_FAILED
    assert "no longer PENDING" in done.stderr  # the server's reason reaches the engine's log
    # The orchestrator may have queued it meanwhile; no launcher gives an INACTIVE datastore's action a slot.
    assert api.get(f"/action/{action['id']}")["data"]["state"] in ("HAS_NEVER_RUN", "QUEUED")
    types = _types(_history(api, action["id"]))
    assert "ActionCheckedOut" not in types and "ActionCheckedIn" not in types


def test_the_engine_names_a_missing_environment_variable(dart: RunningDart, api_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
    env.update(DART_ACTION_ID="X", DART_ACTION_USER_ID="admin", DART_API_URL=api_url)

    done = _run_engine(env)

    assert done.returncode == EXIT_CHECKOUT_FAILED
    assert "DART_API_TOKEN" in done.stderr


def test_report_progress_and_patch_datastore(api: Api, client: DartClient, engine: dict[str, Any]) -> None:
    action = _action(api, engine, "fake_action_that_succeeds")
    updated = client.report_progress(action["id"], progress=0.25, extra_data={"step": "copy"})
    assert updated is not None
    assert updated["data"]["progress"] == 0.25 and updated["data"]["extra_data"] == {"step": "copy"}
    datastore = client.patch_datastore(action["data"]["datastore_id"], host="example.internal", port=21050)
    assert (datastore["data"]["host"], datastore["data"]["port"]) == ("example.internal", 21050)
    with pytest.raises(DartApiError) as refused:
        client.patch_datastore(action["data"]["datastore_id"], state="NOT_A_STATE")
    assert refused.value.status == 400 and refused.value.message


# -- the retry policy, against a local server ------------------------------------------------------------


class _Flaky(BaseHTTPRequestHandler):
    """`/flaky` answers 503 twice then 200; `/bad` always 400; `/down` always 503. Counts every request."""

    counts: dict[str, int] = {}
    lock = threading.Lock()

    queries: list[dict[str, list[str]]] = []
    ELEMENTS = [{"s3_path": f"s3://b/{i}"} for i in range(5)]

    def _answer(self) -> None:
        path, _, query = self.path.partition("?")
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1
            seen = self.counts[path]
        if path == "/api/1/action/A/subscription/elements":
            # Pages of 3 regardless of limit, so the client must page by what it got, not by what it asked.
            params = urllib.parse.parse_qs(query)
            self.queries.append(params)
            offset = int(params["offset"][0])
            status, body = 200, {"results": self.ELEMENTS[offset: offset + 3]}
        elif path == "/api/1/flaky":
            status, body = (503, {"results": "ERROR", "error_message": "busy"}) if seen <= 2 else \
                (200, {"results": {"seen": seen}})
        elif path == "/api/1/bad":
            status, body = 400, {"results": "ERROR", "error_message": "state: not allowed"}
        else:
            status, body = 503, {"results": "ERROR", "error_message": "down for good"}
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture()
def flaky_server() -> Iterator[str]:
    _Flaky.counts = {}
    _Flaky.queries = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/1"
    finally:
        server.shutdown()
        server.server_close()


def test_5xx_is_retried_until_it_succeeds(flaky_server: str) -> None:
    client = DartClient(flaky_server, "k:s", retries=RetryPolicy(total_seconds=10, initial_delay=0.01))
    assert client.get("/flaky") == {"seen": 3}
    assert _Flaky.counts["/api/1/flaky"] == 3


def test_4xx_is_never_retried_and_carries_the_servers_message(flaky_server: str) -> None:
    client = DartClient(flaky_server, "k:s", retries=RetryPolicy(total_seconds=10, initial_delay=0.01))
    with pytest.raises(DartApiError) as raised:
        client.get("/bad")
    assert (raised.value.status, raised.value.message) == (400, "state: not allowed")
    assert _Flaky.counts["/api/1/bad"] == 1


def test_retrying_stops_within_the_time_budget(flaky_server: str) -> None:
    # A fake clock that moves only when the client sleeps: the budget is checked without waiting it out.
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client = DartClient(flaky_server, "k:s", retries=RetryPolicy(total_seconds=30, initial_delay=1, max_delay=8),
                        sleep=sleep, clock=lambda: now[0])
    with pytest.raises(DartApiError) as raised:
        client.get("/down")
    assert raised.value.status == 503 and raised.value.message == "down for good"
    assert sum(slept) <= 30 and len(slept) >= 3
    assert _Flaky.counts["/api/1/down"] == len(slept) + 1
    assert max(slept) <= 8


def test_subscription_elements_are_read_page_by_page_until_an_empty_page(flaky_server: str) -> None:
    client = DartClient(flaky_server, "k:s", retries=NO_RETRIES)
    assert list(client.subscription_elements("A")) == _Flaky.ELEMENTS
    assert [(q["limit"], q["offset"]) for q in _Flaky.queries] == [(["10000"], ["0"]), (["10000"], ["3"]),
                                                                   (["10000"], ["5"])]


def test_an_unreachable_server_is_a_dart_api_error_without_status() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Flaky) as closed:
        port = closed.server_address[1]  # bound, then closed: nothing listens there any more
    client = DartClient(f"http://127.0.0.1:{port}/api/1", "k:s", retries=RetryPolicy(total_seconds=0))
    with pytest.raises(DartApiError) as raised:
        client.get("/anything")
    assert raised.value.status is None and "cannot reach dart" in raised.value.message


# -- run_action's contract, without a server ---------------------------------------------------------------


class _RecordingClient:
    """Stands in for DartClient: check-out succeeds, check-ins are recorded."""

    def __init__(self) -> None:
        self.checkins: list[dict[str, Any]] = []

    def checkout(self, action_id: str) -> ActionContext:
        return ActionContext({"id": "E"}, {"id": action_id, "data": {"action_type_name": "t"}},
                             {"id": "D", "data": {}})

    def checkin(self, action_id: str, succeeded: bool, error_message: str | None = None,
                consume_subscription_state: str | None = None) -> None:
        self.checkins.append({"succeeded": succeeded, "error_message": error_message,
                              "consume_subscription_state": consume_subscription_state})


def test_run_action_checks_in_even_when_interrupted() -> None:
    env = EngineEnvironment("A1", "u", "http://unused/api/1", "k:s")
    fake = _RecordingClient()

    def interrupted(context: ActionContext, client: Any) -> None:
        context.consume_subscription_state = "SUCCESS"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_action(interrupted, env, fake)  # type: ignore[arg-type]
    assert len(fake.checkins) == 1
    assert fake.checkins[0]["succeeded"] is False
    assert "interrupted" in fake.checkins[0]["error_message"]
    assert fake.checkins[0]["consume_subscription_state"] == "SUCCESS"
