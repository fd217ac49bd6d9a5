"""Metrics, traces and SLA alerts (issue 15, items 6-8) end to end on `dart up`, SQLite and PostgreSQL: the run
metrics after a known sequence of runs (also as `dart api`'s gunicorn workers answer them, whichever worker),
one connected trace from a manual trigger's request to its engine's check-in exported to an OTLP/HTTP collector
running in this test, and the "running late" mail of a workflow's sla_seconds, sent once."""

from __future__ import annotations

import email
import email.policy
import json
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import pg
from services.commands.notifications import Notifier
from tests.e2e.conftest import BACKENDS, RunningDart, free_port
from tests.e2e.flows import (
    FAILS,
    SUCCEEDS,
    action_spec,
    datastore,
    finished,
    history_types,
    instance_actions,
    instances,
    register_no_op,
    wait_for,
    workflow,
)
from tests.e2e.stacks import PRODUCTION, running

COPY = "fake_copy_hdfs_to_s3"
LATE_TO = "late-owner@example.com"


# ------------------------------------------------------------------------------------------- collectors
class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace collector: every span POSTed to /v1/traces, decoded with opentelemetry-proto."""

    spans: ClassVar[list[dict[str, Any]]] = []  # one collector per test run: the class keeps what it received
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        found = []
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    found.append({
                        "trace": span.trace_id.hex(), "span": span.span_id.hex(),
                        "parent": span.parent_span_id.hex() or None, "name": span.name,
                        "attributes": {a.key: a.value.string_value or a.value.int_value for a in span.attributes},
                    })
        with self.lock:
            self.spans.extend(found)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Inbox:
    def __init__(self) -> None:
        self.mails: list[Any] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.mails.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def matching(self, *needles: str) -> list[Any]:
        with self.lock:
            mails = list(self.mails)
        return [m for m in mails if all(n in str(m["Subject"]) + "\n" + m.get_content() for n in needles)]


@pytest.fixture(scope="module")
def collector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    yield handler
    controller.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, collector: str,
         inbox: Inbox) -> Iterator[RunningDart]:
    home = tmp_path_factory.mktemp(f"observed-{request.param}")
    env = {"DART_OTEL_EXPORTER_OTLP_ENDPOINT": collector, "OTEL_BSP_SCHEDULE_DELAY": "100",
           "DART_SMTP_HOST": "127.0.0.1", "DART_SMTP_PORT": str(inbox.port),  # type: ignore[attr-defined]
           "DART_ENV_NAME": "e2e-observed", "DART_POLL_INTERVAL": "0.2"}
    if request.param == "postgres":
        server = pg.server_url_from_env()
        if server is None:
            pytest.skip(pg.SKIP_REASON)
        with pg.temporary_database(server) as url:
            running = RunningDart(home, url, **env)
            try:
                yield running
            finally:
                running.stop()
    else:
        running = RunningDart(home, None, **env)
        try:
            yield running
        finally:
            running.stop()


# --------------------------------------------------------------------------------------------- metrics
def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def run_metrics(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
                workflows: dict[str, str]) -> dict[str, float]:
    """The samples about the test's workflows and action types, keyed readably."""
    out = {}
    for (name, labels), value in samples.items():
        given = dict(labels)
        if name == "dart_workflow_runs_total" and given["workflow_id"] in workflows:
            assert given["workflow"] == workflows[given["workflow_id"]]
            out[f"runs {given['workflow'][:2]} {given['outcome']}"] = value
        elif name in ("dart_action_duration_seconds_count", "dart_action_queue_wait_seconds_count"):
            out[f"{name} {given['action_type']}"] = value
        elif name == "dart_trigger_to_first_action_seconds_count" and given["workflow_id"] in workflows:
            out[f"latency {given['workflow'][:2]}"] = value
    return out


def _named_workflow(api: Any, prefix: str, actions: list[Any], **store_args: Any) -> dict[str, Any]:
    store = datastore(api, "ACTIVE", **store_args)
    flow = workflow(api, store, actions)
    return api.put(f"/workflow/{flow['id']}", {**flow, "data": {**flow["data"], "name": f"{prefix}_{flow['id']}"}})


def test_metrics_after_a_known_sequence_of_runs(dart: RunningDart, tmp_path: Path) -> None:
    api = dart.api()
    done = _named_workflow(api, "ok", [SUCCEEDS, SUCCEEDS])
    broken = _named_workflow(api, "ko", [FAILS])
    stopped = _named_workflow(api, "xx", [action_spec(COPY, "slow")], sleep=60)
    for _ in range(2):  # two runs one after the other: the second trigger is refused while one runs
        api.post(f"/workflow/{done['id']}/do-manual-trigger", None)
        finished(api, done, count=len([i for i in instances(api, done)]))
    api.post(f"/workflow/{broken['id']}/do-manual-trigger", None)
    finished(api, broken)
    api.post(f"/workflow/{stopped['id']}/do-manual-trigger", None)
    [instance] = instances(api, stopped)
    slow = wait_for(lambda: next((a for a in instance_actions(api, instance) if a["data"]["state"] == "RUNNING"),
                                 None), what="the slow action running")
    in_use = wait_for(lambda: {k: v for k, v in scrape(dart.base).items()
                               if k[0].startswith("dart_datastore_slots")
                               and dict(k[1])["datastore_id"] == slow["data"]["datastore_id"]},
                      what="the slow action's slot in /metrics")
    assert sorted((name, value) for (name, _), value in in_use.items()) == [
        ("dart_datastore_slots", 1.0), ("dart_datastore_slots_in_use", 1.0)]
    api.post(f"/workflow/instance/{instance['id']}/cancel", {"reason": "metrics test"})
    finished(api, stopped)

    names = {f["id"]: f["data"]["name"] for f in (done, broken, stopped)}
    expected = {
        "runs ok started": 2.0, "runs ok completed": 2.0,
        "runs ko started": 1.0, "runs ko failed": 1.0,
        "runs xx started": 1.0, "runs xx cancelled": 1.0,
        f"dart_action_duration_seconds_count {SUCCEEDS}": 4.0, f"dart_action_queue_wait_seconds_count {SUCCEEDS}": 4.0,
        f"dart_action_duration_seconds_count {FAILS}": 1.0, f"dart_action_queue_wait_seconds_count {FAILS}": 1.0,
        f"dart_action_duration_seconds_count {COPY}": 1.0, f"dart_action_queue_wait_seconds_count {COPY}": 1.0,
        "latency ok": 2.0, "latency ko": 1.0, "latency xx": 1.0,
    }
    wait_for(lambda: run_metrics(scrape(dart.base), names) == expected, what="the run metrics of the runs")
    samples = scrape(dart.base)
    assert run_metrics(samples, names) == expected
    created = len(api.get("/log", params={"type": "WorkflowInstanceCreated", "limit": 1000}))
    wait_for(lambda: scrape(dart.base).get(("dart_events_appended_total", (("type", "WorkflowInstanceCreated"),)))
             == created, what="WorkflowInstanceCreated counted")
    consumers = {dict(labels)["consumer"] for name, labels in samples if name == "dart_consumer_lag_events"}
    assert {"orchestrator", "launcher", "notifier"} <= consumers
    wait_for(lambda: scrape(dart.base)[("dart_consumer_lag_events", (("consumer", "orchestrator"),))] == 0,
             what="the orchestrator caught up")
    assert not any(name.startswith("dart_relay_lag") for name, _ in samples)  # no relay in the embedded mode
    assert not any(k[0] == "dart_datastore_slots_in_use" and dict(k[1])["datastore_id"] == slow["data"]["datastore_id"]
                   for k in samples)  # its slot freed by the cancel

    # `dart api` with two gunicorn workers on the same store answers the same, whichever worker scrapes.
    port = free_port()
    env = {k: v for k, v in dart.env.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "DART_OTEL_EXPORTER_OTLP_ENDPOINT")}
    env.update(DART_HOME=str(tmp_path / "api-home"), DART_DATABASE_URL=dart.database_url)
    with open(tmp_path / "api.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.runtime.cli", "api", "--port", str(port),
                                 "--workers", "2", "--threads", "2"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base), what="dart api up")
        for _ in range(6):
            assert run_metrics(scrape(base), names) == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, (tmp_path / "api.log").read_text()


def _answers(base: str) -> bool:
    try:
        return urllib.request.urlopen(base + "/health", timeout=2).status == 200
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- traces
def test_one_connected_trace_from_the_manual_trigger_to_the_engine_s_check_in(dart: RunningDart) -> None:
    run = assert_one_trace_from_trigger_to_check_in(dart.api())
    # every event of the run carries the correlation id of its trigger's request
    assert len(correlations(run)) == 1 and None not in correlations(run), [(e["type"], e["metadata"]) for e in run]


@pytest.mark.postgres
def test_the_trace_crosses_the_broker_and_the_relay_lag_is_measured_on_the_production_wiring(
        collector: str, tmp_path: Path) -> None:
    env = {"DART_OTEL_EXPORTER_OTLP_ENDPOINT": collector, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with running(PRODUCTION, tmp_path, env=env) as dart:
        api = dart.api()
        register_no_op(api)
        run = assert_one_trace_from_trigger_to_check_in(api)
        # Through a broker, the decision to queue the action (and take its slot) may come from another
        # chain's event; from its creation through the engine to the run's end, the run's correlation holds.
        held = correlations(run, {"WorkflowInstanceCreated", "ActionCreated", "ActionLaunched", "ActionCheckedOut",
                                  "ActionCheckedIn", "ActionCompleted", "WorkflowInstanceCompleted"})
        assert len(held) == 1 and None not in held, [(e["type"], e["metadata"]) for e in run]
        lag = wait_for(lambda: scrape(dart.base).get(("dart_relay_lag_events", ())) == 0.0 or None,
                       what="the relay caught up in /metrics")
        assert lag


def assert_one_trace_from_trigger_to_check_in(api: Any) -> list[dict[str, Any]]:
    """Run a one-action workflow by hand; its spans at the collector form one tree rooted at the trigger's
    request, with the engine's check-out and check-in under the launch. Returns the run's events (its
    instance's and its action's)."""
    flow = workflow(api, datastore(api, "ACTIVE"), [SUCCEEDS])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = finished(api, flow, timeout=120)
    [action] = instance_actions(api, instance)
    trigger_path = f"/api/1/workflow/{flow['id']}/do-manual-trigger"
    checkin_path = f"/api/1/engine/action/{action['id']}/checkin"

    def trace() -> list[dict[str, Any]] | None:
        with Collector.lock:
            spans = list(Collector.spans)
        roots = [s for s in spans if s["attributes"].get("url.path") == trigger_path]
        if len(roots) != 1:
            return None
        found = [s for s in spans if s["trace"] == roots[0]["trace"]]
        checkin = [s for s in found if s["attributes"].get("url.path") == checkin_path]
        completed = [s for s in found if s["name"] == "orchestrator WorkflowInstanceCompleted"]
        return found if checkin and completed else None

    spans = wait_for(trace, what="the run's spans at the collector")
    by_id = {s["span"]: s for s in spans}
    [root] = [s for s in spans if s["parent"] is None]
    assert root["attributes"]["url.path"] == trigger_path and root["name"].startswith("POST ")
    assert all(s["parent"] in by_id for s in spans if s is not root)  # connected: every parent is in the trace

    def ancestors(span: dict[str, Any]) -> list[str]:
        names = []
        while span["parent"] is not None:
            span = by_id[span["parent"]]
            names.append(span["name"])
        return names

    [checkin] = [s for s in spans if s["attributes"].get("url.path") == checkin_path]
    chain = ancestors(checkin)
    # the launch is a child of the span that created the action (the request's), the engine's requests of the
    # launch's; the consumers' handling of the run's events is in the trace too (through a broker, the queueing
    # of the action may be another chain's: it is the datastore's decision, taken on whichever event came first)
    assert chain == [f"launch no_op_engine {SUCCEEDS}", root["name"]], chain
    assert {"orchestrator WorkflowInstanceCreated", "orchestrator ActionCheckedIn"} <= {s["name"] for s in spans}
    # the engine's check-out joined the same trace
    assert any(s["attributes"].get("url.path") == f"/api/1/engine/action/{action['id']}/checkout" for s in spans)
    return [*api.get("/log", params={"stream": f"workflow_instance-{instance['id']}"}),
            *api.get("/log", params={"stream": f"action-{action['id']}"})]


def correlations(events: list[dict[str, Any]], types: set[str] | None = None) -> set[str | None]:
    return {e["metadata"].get("correlation_id") for e in events if types is None or e["type"] in types}


def test_consumer_log_lines_name_the_event_its_stream_and_the_correlation_id(dart: RunningDart) -> None:
    api = dart.api()
    flow = workflow(api, datastore(api, "ACTIVE"), [FAILS])  # its failure mail has nobody to go to: a log line
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = finished(api, flow)
    head = dart.head_position()
    wait_for(lambda: dart.consumer_caught_up(Notifier.name, head, Notifier.types), what="the notifier caught up")
    [failed] = [e for e in api.get("/log", params={"stream": f"workflow_instance-{instance['id']}"})
                if e["type"] == "WorkflowInstanceFailed"]
    lines = [json.loads(line) for line in (dart.home / "logs" / "up.log").read_text().splitlines() if line]
    [line] = [line for line in lines if line.get("logger") == "dart.notifier" and flow["id"] in line["msg"]
              and "nobody to send it to" in line["msg"]]
    assert (line["event_id"], line["stream_id"], line["correlation_id"]) == (
        failed["event_id"], f"workflow_instance-{instance['id']}", failed["metadata"]["correlation_id"])


# ---------------------------------------------------------------------------------------------- alerts
def test_an_instance_past_its_sla_sends_the_running_late_mail_once(dart: RunningDart, inbox: Inbox) -> None:
    api = dart.api()
    flow = workflow(api, datastore(api, "ACTIVE", sleep=60), [SUCCEEDS], sla_seconds=1,
                    on_failure_email=[LATE_TO])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = instances(api, flow)
    wait_for(lambda: inbox.matching("running late", instance["id"]), what="the running late mail")
    late = api.get(f"/workflow/instance/{instance['id']}")
    assert late["data"]["state"] == "RUNNING" and late["data"]["sla_missed_time"]
    api.post(f"/workflow/instance/{instance['id']}/cancel", {"reason": "late test"})
    finished(api, flow)
    head = dart.head_position()
    wait_for(lambda: dart.consumer_caught_up(Notifier.name, head, Notifier.types), what="the notifier caught up")
    [mail] = inbox.matching("running late", instance["id"])
    assert str(mail["Subject"]) == f"[e2e-observed] dart: workflow running late {flow['data']['name']} ({flow['id']})"
    assert LATE_TO in str(mail["To"])
    body = mail.get_content()
    assert f"workflow instance: {instance['id']}" in body
    assert "not finished 1 s after it was queued (its workflow's sla_seconds)" in body
    assert history_types(api, "workflow/instance", instance["id"]).count("WorkflowInstanceLate") == 1
