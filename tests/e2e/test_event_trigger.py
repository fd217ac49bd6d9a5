"""Event triggers end to end through the inbox (reference §7, §11; design.md §4): an external producer sends
``{"call": "PROCESS_TRIGGER", "trigger_type_name": "event", "message": {"event_id": ...}}`` to the inbox SQS
queue with boto3, as raw JSON, as base64 of the JSON, or inside an SNS envelope; `dart worker inbox` fires
every ACTIVE trigger on that ACTIVE event, and nothing for an INACTIVE one.

On production the inbox worker is one of the stack's processes. On the embedded wiring `dart up` consumes the
inbox itself, because DART_BROKER_URL names a broker (tests/e2e/stacks.py)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from services.delivery.inbox import INBOX_CONSUMER, INBOX_NAMESPACE
from bench.harness.api_client import Api
from tests.e2e.flows import (
    SUCCEEDS,
    datastore,
    finished,
    history_types,
    instances,
    name,
    register_no_op,
    trigger,
    wait_for,
    workflow,
)
from tests.e2e.stacks import TWO_WIRINGS, InboxQueue, Running, running


@pytest.fixture(scope="module", params=TWO_WIRINGS)
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(request.param, tmp_path_factory.mktemp(f"events-{request.param}"), inbox=True) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(dart: Running) -> Api:
    client = dart.api()
    register_no_op(client)
    return client


@pytest.fixture(scope="module")
def inbox(dart: Running) -> InboxQueue:
    assert dart.inbox is not None
    return dart.inbox


def process_trigger(event_id: str) -> dict[str, Any]:
    return {"call": "PROCESS_TRIGGER", "trigger_type_name": "event", "message": {"event_id": event_id}}


def encoded(body: dict[str, Any], form: str) -> str:
    text = json.dumps(body)
    if form == "raw":
        return text
    if form == "base64":  # what boto's JSONMessage (the original dart's producers) sends
        return base64.b64encode(text.encode()).decode()
    assert form == "sns"
    return json.dumps({"Type": "Notification", "MessageId": str(uuid.uuid4()),
                       "TopicArn": "arn:aws:sns:us-east-1:123456789012:dart-events", "Subject": None,
                       "Message": text, "Timestamp": "2026-01-01T00:00:00.000Z", "SignatureVersion": "1"})


def event(api: Api, state: str) -> dict[str, Any]:
    return api.post("/event", {"data": {"name": name("ev"), "state": state}})


@pytest.mark.parametrize("form", ["raw", "base64", "sns"])
def test_an_active_event_starts_its_triggers_workflow(api: Api, inbox: InboxQueue, form: str) -> None:
    active = event(api, "ACTIVE")
    flow = workflow(api, datastore(api), [SUCCEEDS])
    fired = trigger(api, "event", {"event_id": active["id"]}, [flow["id"]])
    inbox.send(encoded(process_trigger(active["id"]), form))
    [instance] = finished(api, flow)
    assert instance["data"]["state"] == "COMPLETED"
    assert instance["data"]["trigger_type"] == "event" and instance["data"]["trigger_id"] == fired["id"]
    assert history_types(api, "trigger", fired["id"]).count("TriggerFired") == 1


def test_an_inactive_event_starts_nothing(dart: Running, api: Api, inbox: InboxQueue) -> None:
    """The message naming the INACTIVE event is handled (the inbox records it) and fires nothing; a message
    naming an ACTIVE event sent after it fires its own trigger, so the one instance there is proves the
    pipeline was live all along."""
    inactive, active = event(api, "INACTIVE"), event(api, "ACTIVE")
    flow = workflow(api, datastore(api), [SUCCEEDS], concurrency=2)
    ignored = trigger(api, "event", {"event_id": inactive["id"]}, [flow["id"]])
    fired = trigger(api, "event", {"event_id": active["id"]}, [flow["id"]])

    message_id = inbox.send(encoded(process_trigger(inactive["id"]), "raw"))
    cause = uuid.uuid5(INBOX_NAMESPACE, f"id:{message_id}")  # what the inbox records the message under
    wait_for(lambda: dart.handled(INBOX_CONSUMER, cause), what="the inbox handled the INACTIVE event's message")
    assert instances(api, flow) == []

    inbox.send(encoded(process_trigger(active["id"]), "raw"))
    [instance] = finished(api, flow)
    assert instance["data"]["trigger_id"] == fired["id"] and instance["data"]["state"] == "COMPLETED"
    assert "TriggerFired" not in history_types(api, "trigger", ignored["id"])
    assert history_types(api, "trigger", fired["id"]).count("TriggerFired") == 1


def test_an_event_made_inactive_stops_firing(dart: Running, api: Api, inbox: InboxQueue) -> None:
    """An event that fired while ACTIVE fires nothing once it is INACTIVE."""
    ev = event(api, "ACTIVE")
    flow = workflow(api, datastore(api), [SUCCEEDS])
    fired = trigger(api, "event", {"event_id": ev["id"]}, [flow["id"]])
    inbox.send(encoded(process_trigger(ev["id"]), "raw"))
    finished(api, flow)
    api.put(f"/event/{ev['id']}", {"data": {**api.get(f"/event/{ev['id']}")["data"], "state": "INACTIVE"}})
    message_id = inbox.send(encoded(process_trigger(ev["id"]), "raw"))
    wait_for(lambda: dart.handled(INBOX_CONSUMER, uuid.uuid5(INBOX_NAMESPACE, f"id:{message_id}")),
             what="the inbox handled the message")
    assert len(instances(api, flow)) == 1
    assert history_types(api, "trigger", fired["id"]).count("TriggerFired") == 1
