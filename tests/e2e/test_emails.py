"""Emails end to end (reference §14, §8.4), on every wiring (tests/e2e/stacks.py): dart with DART_SMTP_HOST/PORT
pointing at a local SMTP server (aiosmtpd), real no_op engines (local processes, or ECS tasks on production
where `dart worker notifier` sends the mails), and the mails read back from the server."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.commands.notifications import Notifier
from bench.harness.api_client import Api
from tests.e2e.flows import FAILS, SUCCEEDS, name, register_no_op, wait_for
from tests.e2e.stacks import WIRINGS, Running, free_port, running

ENV_NAME = "e2e-mail"
TEAM = "dart-team@example.com"
SENDER = "dart@e2e.example.com"


class Inbox:
    """An aiosmtpd handler keeping every mail it accepts."""

    def __init__(self) -> None:
        self.port = 0
        self.lock = threading.Lock()
        self.mails: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's
        message: Any = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.mails.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def matching(self, *needles: str) -> list[tuple[list[str], EmailMessage]]:
        with self.lock:
            mails = list(self.mails)
        return [(rcpt, m) for rcpt, m in mails
                if all(n in str(m["Subject"]) + "\n" + m.get_content() for n in needles)]


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    handler = Inbox()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture(scope="module", params=WIRINGS)
def dart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         inbox: Inbox) -> Iterator[Running]:
    env = {"DART_SMTP_HOST": "127.0.0.1", "DART_SMTP_PORT": str(inbox.port), "DART_SMTP_FROM": SENDER,
           "DART_ENV_NAME": ENV_NAME, "DART_EMAIL_CC_ON_ERROR": TEAM}
    with running(request.param, tmp_path_factory.mktemp(f"emails-{request.param}"), env=env) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(dart: Running) -> Api:
    client = dart.api()
    register_no_op(client)
    return client


def workflow(api: Api, action_type: str, action_emails: dict[str, list[str]],
             **workflow_data: Any) -> dict[str, Any]:
    store = api.post("/datastore", {"data": {"name": name("ds"), "engine_name": "no_op_engine",
                                             "state": "ACTIVE", "args": {"action_sleep_time_in_seconds": 0}}})
    flow = api.post(f"/datastore/{store['id']}/workflow",
                    {"data": {"name": name("wf"), "state": "ACTIVE", **workflow_data}})
    api.post(f"/workflow/{flow['id']}/action", [{"data": {
        "name": name("act"), "action_type_name": action_type, "engine_name": "no_op_engine",
        **action_emails}}])
    return flow


def finished_instance(api: Api, flow: dict[str, Any]) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = api.get(f"/workflow/{flow['id']}/instance", params={"limit": 10})
        done = [i for i in found if i["data"]["state"] in ("COMPLETED", "FAILED")]
        return done[0] if done else None

    return wait_for(check, what=f"a finished instance of {flow['data']['name']}")


def notified_up_to_now(dart: Running) -> None:
    """Wait until the notifier has handled every event it reads up to the log's head: any mail (or duplicate)
    those events call for has been sent by then."""
    head = dart.head_position()
    wait_for(lambda: dart.consumer_caught_up(Notifier.name, head, Notifier.types),
             what="the notifier caught up with the log")


def one_mail(inbox: Inbox, *needles: str) -> tuple[list[str], EmailMessage]:
    found = inbox.matching(*needles)
    assert len(found) == 1, [str(m["Subject"]) for _, m in found]
    return found[0]


def addresses(header: Any) -> list[str]:
    return [a.strip() for a in str(header).split(",")] if header else []


def test_a_failing_action_sends_the_action_and_workflow_failure_mails(dart: Running, api: Api, inbox: Inbox) -> None:
    flow = workflow(api, FAILS, {"on_failure_email": ["action-owner@example.com"]},
                    on_failure_email=["wf-owner@example.com"])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    instance = finished_instance(api, flow)
    assert instance["data"]["state"] == "FAILED"
    wait_for(lambda: inbox.matching("workflow failed", f"({flow['id']})"), what="the workflow failure mail")
    notified_up_to_now(dart)
    [action] = api.get("/action", params={"filters": [f"workflow_instance_id = {instance['id']}"]})

    rcpt, mail = one_mail(inbox, "action failed", f"({action['id']})")
    assert str(mail["Subject"]) == (
        f"[{ENV_NAME}] dart: action failed {action['data']['name']} ({action['id']})")
    assert addresses(mail["To"]) == ["action-owner@example.com"] and addresses(mail["Cc"]) == [TEAM]
    assert sorted(rcpt) == sorted(["action-owner@example.com", TEAM])
    assert str(mail["From"]) == SENDER
    body = mail.get_content()
    assert "failed as expected" in body and f"/api/1/action/{action['id']}" in body

    rcpt, mail = one_mail(inbox, "workflow failed", f"({flow['id']})")
    assert str(mail["Subject"]) == f"[{ENV_NAME}] dart: workflow failed {flow['data']['name']} ({flow['id']})"
    assert addresses(mail["To"]) == ["wf-owner@example.com"] and addresses(mail["Cc"]) == [TEAM]
    assert instance["id"] in mail.get_content() and "failed as expected" in mail.get_content()


def test_a_successful_run_sends_started_and_completed_mails(dart: Running, api: Api, inbox: Inbox) -> None:
    flow = workflow(api, SUCCEEDS, {"on_success_email": ["action-fan@example.com"]},
                    on_started_email=["wf-watcher@example.com"], on_success_email=["wf-fan@example.com"],
                    on_failure_email=["wf-owner@example.com"])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    instance = finished_instance(api, flow)
    assert instance["data"]["state"] == "COMPLETED"
    wait_for(lambda: inbox.matching("workflow completed", f"({flow['id']})"), what="the workflow completed mail")
    notified_up_to_now(dart)
    [action] = api.get("/action", params={"filters": [f"workflow_instance_id = {instance['id']}"]})

    _, started = one_mail(inbox, "workflow started", f"({flow['id']})")
    assert str(started["Subject"]) == (
        f"[{ENV_NAME}] dart: workflow started {flow['data']['name']} ({flow['id']})")
    assert addresses(started["To"]) == ["wf-watcher@example.com"] and not started["Cc"]

    _, done = one_mail(inbox, "action completed", f"({action['id']})")
    assert addresses(done["To"]) == ["action-fan@example.com"] and not done["Cc"]

    rcpt, completed = one_mail(inbox, "workflow completed", f"({flow['id']})")
    assert str(completed["Subject"]) == (
        f"[{ENV_NAME}] dart: workflow completed {flow['data']['name']} ({flow['id']})")
    assert rcpt == ["wf-fan@example.com"] and instance["id"] in completed.get_content()
    assert inbox.matching("failed", f"({flow['id']})") == []  # no failure mail for a good run
