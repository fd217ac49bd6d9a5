"""The Python client (services/client) against a real `dart up` on SQLite and on PostgreSQL: every entity kind
through its typed calls, paging, errors as exceptions with the server's status and message, idempotent
creates, runs (trigger, wait with progress, cancel, the recorded version), events, schedules, keys, the log
and its live stream, the graph. Retries are checked against a small local HTTP server that answers 503."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.client import (
    BadRequest,
    Conflict,
    Dart,
    Forbidden,
    NotFound,
    RetryPolicy,
    ServerError,
    Unauthorized,
    Unprocessable,
    Unreachable,
    WaitTimeout,
)
from services.client.models import DatasetData
from tests.e2e.conftest import KEY, SECRET, RunningDart, free_port

FAST = RetryPolicy(total_seconds=2, initial_delay=0.05, max_delay=0.2)


@pytest.fixture(scope="module")
def client(dart: RunningDart) -> Dart:
    return Dart(f"{dart.base}/api/1", f"{KEY}:{SECRET}", retries=FAST)


@pytest.fixture(scope="module")
def store(client: Dart) -> Any:
    """An ACTIVE no_op datastore whose actions take no time."""
    return client.datastores.create({"name": f"client-{uuid.uuid4().hex[:6]}", "engine_name": "no_op_engine",
                                     "state": "ACTIVE", "args": {"action_sleep_time_in_seconds": 0}})


def _workflow(client: Dart, datastore_id: str, actions: int = 2, action_type: str = "fake_action_that_succeeds") -> Any:
    workflow = client.workflows.create({"name": f"wf-{uuid.uuid4().hex[:8]}", "datastore_id": datastore_id,
                                        "state": "ACTIVE"})
    client.actions.create_many([{"name": f"step{i}", "action_type_name": action_type, "engine_name": "no_op_engine",
                                 "workflow_id": workflow.id} for i in range(actions)])
    return workflow


def _dataset(name: str) -> DatasetData:
    return DatasetData(name=name, table_name="t", location="s3://bucket/prefix", load_type="INSERT",
                       data_format={"file_format": "TEXTFILE", "row_format": "DELIMITED"},
                       columns=[{"name": "a", "data_type": "STRING"}], compression="NONE")


def test_every_kind_is_created_read_listed_changed_and_deleted_with_typed_answers(client: Dart, store: Any) -> None:
    dataset = client.datasets.create(_dataset(f"ds-{uuid.uuid4().hex[:6]}"))
    assert dataset.data.table_name == "t" and dataset.data.columns[0]["name"] == "a"  # type: ignore[index]
    event = client.events.create({"name": f"ev-{uuid.uuid4().hex[:6]}"})
    subscription = client.subscriptions.create({"name": f"sub-{uuid.uuid4().hex[:6]}", "dataset_id": dataset.id})
    assert subscription.data.dataset_id == dataset.id
    workflow = _workflow(client, store.id, actions=3)
    templates = list(client.actions.list(filters=[f"workflow_id = {workflow.id}"], order_by=["order_idx ASC"]))
    assert [a.data.name for a in templates] == ["step0", "step1", "step2"]
    trigger = client.triggers.create({"name": f"tr-{uuid.uuid4().hex[:6]}", "trigger_type_name": "event",
                                      "args": {"event_id": event.id}, "workflow_ids": [workflow.id]})
    assert trigger.data.workflow_ids == [workflow.id]

    assert client.workflows.get(workflow.id).data.name == workflow.data.name
    assert client.workflows.find(str(workflow.data.name)).id == workflow.id  # type: ignore[union-attr]
    assert client.events.find("no-such-event-name") is None

    before = client.log(after=0)
    position = max(e.global_position for e in before)
    renamed = client.datasets.update(dataset.id, {**dataset.data.to_json(), "table_name": "t2"})
    assert renamed.data.table_name == "t2" and renamed.version_id == dataset.version_id + 1
    assert client.datasets.get(dataset.id, as_of=position).data.table_name == "t"  # time travel
    patched = client.workflows.set(workflow.id, concurrency=1, retries_on_failure=2)
    assert patched.data.retries_on_failure == 2
    patched = client.workflows.patch(workflow.id, [{"op": "replace", "path": "/data/retries_on_failure",
                                                    "value": 0}])
    assert patched.data.retries_on_failure == 0
    assert [e.type for e in client.workflows.history(workflow.id)][:1] == ["WorkflowCreated"]
    assert [e.type for e in client.datasets.history(dataset.id)] == ["DatasetCreated", "DatasetUpdated"]

    client.triggers.delete(trigger.id)
    with pytest.raises(NotFound) as gone:
        client.triggers.get(trigger.id)
    assert gone.value.status == 404 and trigger.id in gone.value.message


def test_listing_is_an_iterator_over_pages_with_filters(client: Dart) -> None:
    prefix = f"page{uuid.uuid4().hex[:6]}"
    made = {client.events.create({"name": f"{prefix}-{i}"}).id for i in range(7)}
    listed = list(client.events.list(filters=[f"name LIKE {prefix}%"], page_size=3))
    assert {e.id for e in listed} == made and len(listed) == 7  # three pages, none repeated
    assert len(list(client.events.list(filters=[f"name LIKE {prefix}%"], page_size=3, limit=5))) == 5
    assert list(client.events.list(filters=[f"name = {prefix}-none"])) == []


def test_errors_are_exceptions_with_the_servers_status_and_message(client: Dart, dart: RunningDart,
                                                                    store: Any) -> None:
    with pytest.raises(BadRequest) as bad:
        client.workflows.create({"name": "x", "datastore_id": store.id, "no_such_field": 1})
    assert bad.value.status == 400 and "no_such_field" in bad.value.message
    with pytest.raises(NotFound):
        client.workflows.create({"name": "x", "datastore_id": "NOSUCHSTORE"})
    with pytest.raises(Unauthorized) as unknown:
        Dart(f"{dart.base}/api/1", f"{KEY}:wrong-secret", retries=FAST).engines.get("x")
    assert unknown.value.status == 401
    viewer = client.keys.create("viewer@example.com", role="viewer")
    with pytest.raises(Forbidden) as refused:
        Dart(f"{dart.base}/api/1", viewer.token, retries=FAST).events.create({"name": "nope"})
    assert refused.value.status == 403 and "editor" in refused.value.message
    event = client.events.create({"name": f"conflict-{uuid.uuid4().hex[:6]}"})
    client.events.set(event.id, description="moved on")
    with pytest.raises(Conflict) as stale:
        client.events.update(event.id, {"name": event.data.name, "description": "late"}, version_id=event.version_id)
    assert stale.value.status == 409
    key = uuid.uuid4().hex
    client.events.create({"name": f"idem-{key[:6]}"}, idempotency_key=key)
    with pytest.raises(Unprocessable):
        client.events.create({"name": f"other-{key[:6]}"}, idempotency_key=key)


def test_a_create_repeated_with_its_idempotency_key_creates_once(client: Dart) -> None:
    key = uuid.uuid4().hex
    first = client.events.create({"name": f"once-{key[:6]}"}, idempotency_key=key)
    again = client.events.create({"name": f"once-{key[:6]}"}, idempotency_key=key)
    assert again.id == first.id
    assert len(list(client.events.list(filters=[f"name = once-{key[:6]}"]))) == 1


def test_run_and_wait_reports_progress_and_the_version_that_ran(client: Dart, store: Any) -> None:
    workflow = _workflow(client, store.id, actions=2)
    version = client.workflows.get(workflow.id).version_id
    seen: list[tuple[str, list[str]]] = []
    instance = client.run_and_wait(workflow.id, timeout=60, poll=0.1,
                                   progress=lambda i, actions: seen.append((str(i.data.state),
                                                                            [str(a.data.state) for a in actions])))
    assert instance.data.state == "COMPLETED"
    assert seen[-1] == ("COMPLETED", ["COMPLETED", "COMPLETED"]) and len(seen) >= 2
    assert instance.data.workflow_version == version  # the definition that ran
    assert [i.id for i in client.workflow_instances(workflow.id)] == [instance.id]
    actions = client.instance_actions(instance.id)
    assert client.action_logs(actions[0].id)["finished"] is True


def test_waiting_times_out_and_a_cancel_ends_the_run(client: Dart) -> None:
    slow = client.datastores.create({"name": f"slow-{uuid.uuid4().hex[:6]}", "engine_name": "no_op_engine",
                                     "state": "ACTIVE", "args": {"action_sleep_time_in_seconds": 30}})
    workflow = _workflow(client, slow.id, actions=1)
    instance_id = client.trigger_workflow(workflow.id)
    with pytest.raises(WaitTimeout) as waited:
        client.wait_for_instance(instance_id, timeout=0.5, poll=0.1)
    assert waited.value.instance.data.state in ("QUEUED", "RUNNING")
    with pytest.raises(BadRequest) as busy:  # its concurrency (1) is taken
        client.trigger_workflow(workflow.id)
    assert "concurrency" in busy.value.message.lower()
    client.cancel_instance(instance_id, reason="a test")
    ended = client.wait_for_instance(instance_id, timeout=30, poll=0.1)
    assert ended.data.state == "FAILED" and ended.data.cancelled_by


def test_events_fire_schedules_backfill_and_pause(client: Dart, store: Any) -> None:
    workflow = _workflow(client, store.id, actions=1)
    event = client.events.create({"name": f"fire-{uuid.uuid4().hex[:6]}", "state": "ACTIVE"})
    on_event = client.triggers.create({"name": f"on-{uuid.uuid4().hex[:6]}", "trigger_type_name": "event",
                                       "state": "ACTIVE", "args": {"event_id": event.id},
                                       "workflow_ids": [workflow.id]})
    assert client.fire_event(event.id) == [on_event.id]
    assert "scheduled" in {t["name"] for t in client.trigger_types()}
    daily = client.triggers.create({"name": f"daily-{uuid.uuid4().hex[:6]}", "trigger_type_name": "scheduled",
                                    "state": "ACTIVE", "args": {"cron_pattern": "0 3 * * ? *"},
                                    "workflow_ids": [workflow.id]})
    planned = client.backfill(daily.id, "2026-01-01T00:00:00+00:00", "2026-01-03T23:59:00+00:00", dry_run=True)
    assert len(planned["scheduled_times"]) == 3
    client.pause_trigger(daily.id, "a test")
    assert client.triggers.get(daily.id).data.paused is True
    client.unpause_trigger(daily.id, "done")
    assert client.triggers.get(daily.id).data.paused is False


def test_keys_are_created_listed_read_and_revoked(client: Dart) -> None:
    made = client.keys.create("script@example.com", role="operator")
    assert made.secret and made.role == "operator"
    assert made.key in {k.key for k in client.keys.list()}
    assert client.keys.get(made.key).user_id == "script@example.com"
    assert client.keys.history(made.key)[0].type
    client.keys.revoke(made.key)
    with pytest.raises(NotFound):
        client.keys.get(made.key)


def test_the_log_pages_and_the_live_stream_follows(client: Dart) -> None:
    position = max(e.global_position for e in client.log(page_size=50))
    name = f"streamed-{uuid.uuid4().hex[:6]}"
    threading.Timer(0.5, lambda: client.events.create({"name": name})).start()
    stream = client.stream(after=position, types=["EventCreated"])
    started = time.monotonic()
    seen = next(stream)
    stream.close()
    assert seen.type == "EventCreated" and seen.data["data"]["name"] == name and seen.global_position > position
    assert time.monotonic() - started < 10
    logged = list(client.log(after=position, types=["EventCreated"]))
    assert seen.event_id in {e.event_id for e in logged} and len({e.event_id for e in logged}) == len(logged)


def test_the_graph_and_the_schemas(client: Dart, store: Any) -> None:
    workflow = _workflow(client, store.id, actions=1)
    graph = client.graph.of("workflow", workflow.id)
    assert workflow.id in {n["entity_id"] for n in graph["nodes"]}
    assert client.schema("workflow")["properties"]["data"]["properties"]["definition_commit"]
    assert client.health() is True
    assert client.whoami()["role"] == "admin"


class _Flaky(BaseHTTPRequestHandler):
    counts: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        count = self.counts[self.path] = self.counts.get(self.path, 0) + 1
        if self.path.startswith("/api/1/busy") and count < 3:
            status, body = 503, b'{"results": "ERROR", "error_message": "try again"}'
        elif self.path.startswith("/api/1/broken"):
            status, body = 500, b'{"results": "ERROR", "error_message": "a bug"}'
        else:
            status, body = 200, b'{"results": "fine"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def flaky() -> Iterator[str]:
    _Flaky.counts = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/1"
    finally:
        server.shutdown()
        server.server_close()


def test_503_and_outages_are_retried_other_answers_are_not(flaky: str) -> None:
    client = Dart(flaky, "k:s", retries=FAST)
    assert client.request("GET", "/busy") == {"results": "fine"} and _Flaky.counts["/api/1/busy"] == 3
    with pytest.raises(ServerError) as broken:
        client.request("GET", "/broken")
    assert broken.value.message == "a bug" and _Flaky.counts["/api/1/broken"] == 1  # a 500 is not retried
    refused = Dart(f"http://127.0.0.1:{free_port()}/api/1", "k:s",
                   retries=RetryPolicy(total_seconds=0.5, initial_delay=0.05, max_delay=0.1))
    started = time.monotonic()
    with pytest.raises(Unreachable) as down:
        refused.events.get("X")
    assert down.value.status is None and 0.3 < time.monotonic() - started < 5
