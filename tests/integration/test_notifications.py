"""The notifier against a real local SMTP server (aiosmtpd) and a real store, on SQLite and PostgreSQL: every
kind of mail of reference §14 (recipients, cc, subject prefix, body), error mails to ``cc_on_error`` when the
entity's list is empty, no second mail for a redelivered event, and an SMTP server that is down makes
``handle`` raise without recording the mail as sent."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from events.store import EventStore
from events.streams.action import ActionCompleted, ActionCreated
from events.streams.dataset import DatasetCreated
from events.streams.datastore import DatastoreCreated
from events.streams.subscription import SubscriptionCreated, SubscriptionUpdated
from events.streams.workflow import WorkflowCreated
from events.streams.workflow_instance import (
    WorkflowInstanceCompleted,
    WorkflowInstanceCreated,
    WorkflowInstanceFailed,
    WorkflowInstanceStarted,
)
from events.subscription import CatchUpSubscription, wait_until
from events.types import Event, ExpectedVersion, RecordedEvent, StreamAppend
from projections.reads import EntityReader
from services.adapters.smtp import SmtpMailer
from services.commands.notifications import MailInProgress, Notifier, notifications_sent
from services.domain.mail import Mail, NullMailer
from services.runtime.email import notifier_from_settings
from services.runtime.settings import SettingsError, load_settings

CC = ("dart-team@example.com",)
ENV = "test-env"


# ------------------------------------------------------------------------------------------ SMTP server
@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def to(self) -> list[str]:
        return _split(self.message["To"])

    @property
    def cc(self) -> list[str]:
        return _split(self.message["Cc"])

    @property
    def body(self) -> str:
        return self.message.get_content()


def _split(header: Any) -> list[str]:
    return [a.strip() for a in str(header).split(",")] if header else []


@dataclass
class Inbox:
    mails: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message: Any = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.mails.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.mails)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.inbox = Inbox()
        self.port = port or free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


# ------------------------------------------------------------------------------------------ world
# The store is conftest's ``projected_store``: the default registry and every inline read model.
def now() -> str:
    return datetime.now(UTC).isoformat()


def new_id() -> str:
    return uuid.uuid4().hex[:10].upper()


class World:
    """Entities appended with the stream event classes (so the read models exist), and the notifier."""

    def __init__(self, store: EventStore, smtp: SmtpServer) -> None:
        self.store = store
        self.smtp = smtp
        self.mailer = SmtpMailer("127.0.0.1", smtp.port, "dart@test.example", timeout=5)
        self.notifier = Notifier(EntityReader(store), self.mailer, ENV, CC)

    def append(self, category: str, entity_id: str, event: Event) -> RecordedEvent:
        expected = ExpectedVersion.NO_STREAM if event.type_name.endswith("Created") else ExpectedVersion.ANY
        [recorded] = self.store.append(StreamAppend(f"{category}-{entity_id}", expected, [event]))
        return recorded

    def datastore(self) -> str:
        entity_id = new_id()
        self.append("datastore", entity_id, DatastoreCreated({
            "name": f"ds_{entity_id.lower()}", "state": "ACTIVE", "engine_name": "no_op_engine"}))
        return entity_id

    def workflow(self, **emails: list[str]) -> str:
        entity_id = new_id()
        self.append("workflow", entity_id, WorkflowCreated({
            "name": f"wf_{entity_id.lower()}", "state": "ACTIVE", "datastore_id": self.datastore(),
            "on_failure_email": [], "on_success_email": [], "on_started_email": [], **emails}))
        return entity_id

    def instance(self, workflow_id: str, state: str = "QUEUED", **extra: Any) -> tuple[str, RecordedEvent]:
        entity_id = new_id()
        created = self.append("workflow_instance", entity_id, WorkflowInstanceCreated({
            "workflow_id": workflow_id, "state": state, "trigger_type": "manual", "retry_num": 0,
            "queued_time": now(), **extra}))
        return entity_id, created

    def action(self, **fields: Any) -> str:
        entity_id = new_id()
        self.append("action", entity_id, ActionCreated({
            "name": f"load_{entity_id.lower()}", "action_type_name": "fake_action_that_fails",
            "state": "RUNNING", "engine_name": "no_op_engine", "datastore_id": self.datastore(),
            "on_failure_email": [], "on_success_email": [], "start_time": now(), **fields}))
        return entity_id

    def complete(self, action_id: str, state: str, error: str | None = None) -> RecordedEvent:
        changes: dict[str, Any] = {"state": state, "end_time": now()}
        if error is not None:
            changes["error_message"] = error
        return self.append("action", action_id, ActionCompleted(changes))

    def subscription(self, **emails: list[str]) -> str:
        dataset_id, entity_id = new_id(), new_id()
        self.append("dataset", dataset_id, DatasetCreated({"name": f"dataset_{dataset_id.lower()}"}))
        self.append("subscription", entity_id, SubscriptionCreated({
            "name": f"sub_{entity_id.lower()}", "dataset_id": dataset_id, "state": "QUEUED",
            "on_failure_email": [], "on_success_email": [], **emails}))
        return entity_id

    def handle(self, *events: RecordedEvent) -> list[Received]:
        before = len(self.smtp.inbox.all())
        self.notifier.handle(list(events))
        return self.smtp.inbox.all()[before:]

    def sent_rows(self) -> list[Any]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(sa.select(notifications_sent)))


@pytest.fixture
def world(projected_store: EventStore, smtp: SmtpServer) -> World:
    return World(projected_store, smtp)


# ------------------------------------------------------------------------------------------ actions
def test_action_failed_goes_to_on_failure_email_cc_the_team(world: World) -> None:
    action_id = world.action(on_failure_email=["owner@example.com", "second@example.com"])
    [mail] = world.handle(world.complete(action_id, "FAILED", "boom: the table is missing"))
    name = f"load_{action_id.lower()}"
    assert mail.subject == f"[{ENV}] dart: action failed {name} ({action_id})"
    assert mail.to == ["owner@example.com", "second@example.com"]
    assert mail.cc == list(CC)
    assert sorted(mail.recipients) == sorted(["owner@example.com", "second@example.com", *CC])
    assert mail.sender == "dart@test.example" and mail.message["From"] == "dart@test.example"
    assert "boom: the table is missing" in mail.body
    assert f"/api/1/action/{action_id}" in mail.body
    assert "FAILED" in mail.body and "fake_action_that_fails" in mail.body


def test_action_failed_with_no_recipients_goes_to_cc_on_error_alone(world: World) -> None:
    action_id = world.action()
    [mail] = world.handle(world.complete(action_id, "FAILED", "no one listening"))
    assert mail.to == list(CC) and mail.cc == [] and mail.recipients == list(CC)
    assert "no one listening" in mail.body


def test_action_failed_with_neither_list_nor_cc_sends_nothing(world: World) -> None:
    world.notifier = Notifier(EntityReader(world.store), world.mailer, ENV, ())
    assert world.handle(world.complete(world.action(), "FAILED", "x")) == []
    assert world.sent_rows() == []


def test_action_completed_only_when_on_success_email_is_set(world: World) -> None:
    quiet = world.action(action_type_name="fake_action_that_succeeds")
    assert world.handle(world.complete(quiet, "COMPLETED")) == []
    loud = world.action(action_type_name="fake_action_that_succeeds", on_success_email=["happy@example.com"])
    [mail] = world.handle(world.complete(loud, "COMPLETED"))
    assert mail.subject == f"[{ENV}] dart: action completed load_{loud.lower()} ({loud})"
    assert mail.to == ["happy@example.com"] and mail.cc == []
    assert f"/api/1/action/{loud}" in mail.body and "COMPLETED" in mail.body and "error" not in mail.body


def test_other_action_updates_send_nothing(world: World) -> None:
    action_id = world.action(on_failure_email=["owner@example.com"], on_success_email=["owner@example.com"])
    queued = world.append("action", action_id, ActionCompleted({"progress": 0.5}))
    assert world.handle(queued) == []


# ------------------------------------------------------------------------------------------ workflows
def test_workflow_started_goes_to_on_started_email(world: World) -> None:
    workflow_id = world.workflow(on_started_email=["starter@example.com"])
    instance_id, _ = world.instance(workflow_id)
    started = world.append("workflow_instance", instance_id, WorkflowInstanceStarted(now()))
    [mail] = world.handle(started)
    assert mail.subject == f"[{ENV}] dart: workflow started wf_{workflow_id.lower()} ({workflow_id})"
    assert mail.to == ["starter@example.com"] and mail.cc == []
    assert instance_id in mail.body and f"/api/1/workflow/instance/{instance_id}" in mail.body
    assert "RUNNING" in mail.body


def test_workflow_started_without_list_sends_nothing(world: World) -> None:
    instance_id, _ = world.instance(world.workflow())
    started = world.append("workflow_instance", instance_id, WorkflowInstanceStarted(now()))
    assert world.handle(started) == []


def test_workflow_failed_goes_to_on_failure_email_cc_the_team(world: World) -> None:
    workflow_id = world.workflow(on_failure_email=["oncall@example.com"])
    instance_id, _ = world.instance(workflow_id, state="RUNNING")
    failed = world.append("workflow_instance", instance_id, WorkflowInstanceFailed({
        "state": "FAILED", "end_time": now(),
        "error_message": "action ABC failed: disk full"}))
    [mail] = world.handle(failed)
    assert mail.subject == f"[{ENV}] dart: workflow failed wf_{workflow_id.lower()} ({workflow_id})"
    assert mail.to == ["oncall@example.com"] and mail.cc == list(CC)
    assert "action ABC failed: disk full" in mail.body and instance_id in mail.body


def test_workflow_failed_with_no_list_goes_to_cc_on_error(world: World) -> None:
    instance_id, _ = world.instance(world.workflow(), state="RUNNING")
    failed = world.append("workflow_instance", instance_id, WorkflowInstanceFailed({
        "state": "FAILED", "error_message": "nope"}))
    [mail] = world.handle(failed)
    assert mail.to == list(CC) and mail.cc == []


def test_instance_created_failed_is_a_workflow_failed_mail(world: World) -> None:
    workflow_id = world.workflow(on_failure_email=["oncall@example.com"])
    _, created = world.instance(workflow_id, state="FAILED",
                                error_message=f"workflow {workflow_id} has no actions")
    [mail] = world.handle(created)
    assert "workflow failed" in mail.subject and "has no actions" in mail.body
    _, queued = world.instance(workflow_id)
    assert world.handle(queued) == []  # a normal (QUEUED) creation sends nothing


def test_workflow_completed_goes_to_on_success_email(world: World) -> None:
    workflow_id = world.workflow(on_success_email=["done@example.com", "done2@example.com"])
    instance_id, _ = world.instance(workflow_id, state="RUNNING")
    completed = world.append("workflow_instance", instance_id, WorkflowInstanceCompleted({
        "state": "COMPLETED", "end_time": now()}))
    [mail] = world.handle(completed)
    assert mail.subject == f"[{ENV}] dart: workflow completed wf_{workflow_id.lower()} ({workflow_id})"
    assert mail.to == ["done@example.com", "done2@example.com"] and mail.cc == []
    assert "COMPLETED" in mail.body
    quiet_instance, _ = world.instance(world.workflow(), state="RUNNING")
    quiet = world.append("workflow_instance", quiet_instance,
                         WorkflowInstanceCompleted({"state": "COMPLETED"}))
    assert world.handle(quiet) == []


# ------------------------------------------------------------------------------------------ subscriptions
def test_subscription_completed_after_generating(world: World) -> None:
    sub_id = world.subscription(on_success_email=["data@example.com"])
    generating = world.append("subscription", sub_id, SubscriptionUpdated({"state": "GENERATING"}))
    active = world.append("subscription", sub_id, SubscriptionUpdated({
        "state": "ACTIVE", "initial_active_time": now()}))
    [mail] = world.handle(generating, active)
    assert mail.subject == f"[{ENV}] dart: subscription completed sub_{sub_id.lower()} ({sub_id})"
    assert mail.to == ["data@example.com"] and mail.cc == []
    assert f"/api/1/subscription/{sub_id}" in mail.body
    # A user re-activating it (INACTIVE -> ACTIVE) generated nothing: no mail.
    inactive = world.append("subscription", sub_id, SubscriptionUpdated({"state": "INACTIVE"}))
    again = world.append("subscription", sub_id, SubscriptionUpdated({"state": "ACTIVE"}))
    assert world.handle(inactive, again) == []


def test_subscription_failed_goes_to_on_failure_email_cc_the_team(world: World) -> None:
    sub_id = world.subscription(on_failure_email=["data-oncall@example.com"])
    world.append("subscription", sub_id, SubscriptionUpdated({"state": "GENERATING"}))
    failed = world.append("subscription", sub_id, SubscriptionUpdated({
        "state": "FAILED", "failed_time": now(),
        "error_message": "the generating container died"}))
    [mail] = world.handle(failed)
    assert mail.subject == f"[{ENV}] dart: subscription failed sub_{sub_id.lower()} ({sub_id})"
    assert mail.to == ["data-oncall@example.com"] and mail.cc == list(CC)
    assert "the generating container died" in mail.body
    empty = world.subscription()
    failed_too = world.append("subscription", empty, SubscriptionUpdated({"state": "FAILED"}))
    [alias] = world.handle(failed_too)
    assert alias.to == list(CC) and alias.cc == []


# ------------------------------------------------------------------------------------------ at least once
def test_a_redelivered_event_sends_nothing_more(world: World) -> None:
    action_id = world.action(on_failure_email=["owner@example.com"])
    failed = world.complete(action_id, "FAILED", "once only")
    assert len(world.handle(failed)) == 1
    assert world.handle(failed) == []
    assert world.handle(failed, failed) == []
    # A fresh notifier (a restarted process) on the same database remembers too.
    restarted = Notifier(EntityReader(world.store), world.mailer, ENV, CC)
    restarted.handle([failed])
    assert len(world.smtp.inbox.all()) == 1
    [row] = world.sent_rows()
    assert row.event_id == str(failed.event_id) and row.state == "sent" and row.kind == "action failed"
    assert row.sent_at is not None and "owner@example.com" in row.recipients


def test_a_batch_with_a_repeat_sends_each_mail_once(world: World) -> None:
    first = world.complete(world.action(on_failure_email=["a@example.com"]), "FAILED", "one")
    second = world.complete(world.action(on_failure_email=["b@example.com"]), "FAILED", "two")
    mails = world.handle(first, second, first)
    assert [m.to for m in mails] == [["a@example.com"], ["b@example.com"]]
    assert {m.message["Message-ID"] for m in mails} == {
        f"<{first.event_id}.action-failed@dart.{ENV}>", f"<{second.event_id}.action-failed@dart.{ENV}>"}


def test_smtp_down_raises_and_nothing_is_marked_sent(projected_store: EventStore) -> None:
    port = free_port()  # nothing listens here yet
    world = World(projected_store, SmtpServer(port))
    failed = world.complete(world.action(on_failure_email=["owner@example.com"]), "FAILED", "retry me")
    with pytest.raises(OSError):
        world.notifier.handle([failed])
    assert world.sent_rows() == []  # the claim was released: the mail is not recorded as sent
    assert not world.notifier.sent(failed.event_id)
    world.smtp.start()  # the server comes back; the event is delivered again
    try:
        [mail] = world.handle(failed)
        assert "retry me" in mail.body
        assert world.notifier.sent(failed.event_id)
        assert world.handle(failed) == []
    finally:
        world.smtp.stop()


def test_a_failure_mid_batch_keeps_the_mails_already_sent(world: World) -> None:
    first = world.complete(world.action(on_failure_email=["a@example.com"]), "FAILED", "one")
    second = world.complete(world.action(on_failure_email=["b@example.com"]), "FAILED", "two")

    class Flaky:
        def __init__(self, inner: SmtpMailer) -> None:
            self.inner, self.calls = inner, 0

        def send(self, mail: Mail) -> None:
            self.calls += 1
            if self.calls == 2:
                raise ConnectionRefusedError("SMTP server went away")
            self.inner.send(mail)

    world.notifier.mailer = Flaky(world.mailer)
    with pytest.raises(ConnectionRefusedError):
        world.notifier.handle([first, second])
    assert world.notifier.sent(first.event_id) and not world.notifier.sent(second.event_id)
    mails = world.handle(first, second)  # the batch is redelivered
    assert [m.to for m in mails] == [["b@example.com"]]
    assert len(world.smtp.inbox.all()) == 2


def test_a_live_claim_elsewhere_raises_and_a_stale_one_is_taken_over(world: World) -> None:
    failed = world.complete(world.action(on_failure_email=["owner@example.com"]), "FAILED", "claimed")
    now = datetime.now(UTC)
    with world.store.transaction() as conn:
        conn.execute(notifications_sent.insert().values(
            event_id=str(failed.event_id), kind="action failed", state="sending", claim=str(uuid.uuid4()),
            recipients="owner@example.com", subject="s", claimed_at=now))
    with pytest.raises(MailInProgress):
        world.notifier.handle([failed])
    assert world.smtp.inbox.all() == []
    later = Notifier(EntityReader(world.store), world.mailer, ENV, CC, lease=timedelta(seconds=60),
                     clock=lambda: now + timedelta(seconds=61))
    later.handle([failed])
    [mail] = world.smtp.inbox.all()
    assert "claimed" in mail.body and later.sent(failed.event_id)


def test_replicas_handling_one_event_at_once_send_one_mail(world: World) -> None:
    """Several notifiers (replicas fed by a broker) get the same event at the same moment: one mail; the
    others raise MailInProgress while it is being sent and find it sent when the event comes back."""
    failed = world.complete(world.action(on_failure_email=["owner@example.com"]), "FAILED", "raced")

    class Slow:
        def send(self, mail: Mail) -> None:
            time.sleep(0.3)
            world.mailer.send(mail)

    replicas = [Notifier(EntityReader(world.store), Slow(), ENV, CC) for _ in range(4)]
    barrier = threading.Barrier(len(replicas))
    in_progress: list[int] = []
    errors: list[BaseException] = []

    def run(notifier: Notifier) -> None:
        try:
            barrier.wait(10)
            for _ in range(100):  # redelivery until it succeeds
                try:
                    notifier.handle([failed])
                    return
                except MailInProgress:
                    in_progress.append(1)
                    time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(world.smtp.inbox.all()) == 1 and in_progress
    assert world.notifier.sent(failed.event_id)


def test_events_older_than_max_age_send_nothing(world: World) -> None:
    failed = world.complete(world.action(on_failure_email=["owner@example.com"]), "FAILED", "old news")
    tomorrow = datetime.now(UTC) + timedelta(days=2)
    old = Notifier(EntityReader(world.store), world.mailer, ENV, CC, clock=lambda: tomorrow)
    old.handle([failed])
    assert world.smtp.inbox.all() == [] and world.sent_rows() == []


def test_the_mail_reflects_the_entity_as_the_event_left_it(world: World) -> None:
    """Handlers may run late: the action's later changes (or deletion) do not change the failure mail."""
    action_id = world.action(on_failure_email=["owner@example.com"])
    failed = world.complete(action_id, "FAILED", "the original error")
    world.append("action", action_id, ActionCompleted({"error_message": "something later"}))
    [mail] = world.handle(failed)
    assert "the original error" in mail.body and "something later" not in mail.body


# ------------------------------------------------------------------------------------------ as a consumer
def test_fed_by_a_catch_up_subscription(world: World) -> None:
    """The embedded delivery path: the notifier as a consumer of the store's catch-up subscription."""
    notifier = world.notifier
    subscription = CatchUpSubscription(world.store, notifier.name, notifier.handle, types=notifier.types,
                                       batch_size=10, poll_interval=0.05)
    thread, stop = subscription.start()
    try:
        workflow_id = world.workflow(on_started_email=["s@example.com"], on_success_email=["c@example.com"])
        instance_id, _ = world.instance(workflow_id)
        action_id = world.action(workflow_id=workflow_id, workflow_instance_id=instance_id,
                                 on_success_email=["a@example.com"])
        world.append("workflow_instance", instance_id, WorkflowInstanceStarted(now()))
        world.complete(action_id, "COMPLETED")
        world.append("workflow_instance", instance_id, WorkflowInstanceCompleted({"state": "COMPLETED"}))
        assert wait_until(lambda: len(world.smtp.inbox.all()) >= 3, timeout=20)
    finally:
        stop.set()
        thread.join(10)
    subjects = [m.subject for m in world.smtp.inbox.all()]
    assert [s.split(" dart: ")[1].rsplit(" ", 2)[0] for s in subjects] == [
        "workflow started", "action completed", "workflow completed"]
    assert set(Notifier.types) >= {"ActionCompleted", "WorkflowInstanceStarted", "WorkflowInstanceCompleted",
                                   "WorkflowInstanceFailed", "SubscriptionUpdated"}


# ------------------------------------------------------------------------------------------ settings
def test_settings_from_env() -> None:
    settings = load_settings({
        "DART_SMTP_HOST": "smtp.example.com", "DART_SMTP_PORT": "2525", "DART_SMTP_FROM": "dart@example.com",
        "DART_SMTP_USERNAME": "u", "DART_SMTP_PASSWORD": "p", "DART_SMTP_STARTTLS": "true",
        "DART_ENV_NAME": "prod", "DART_EMAIL_CC_ON_ERROR": "a@example.com, b@example.com,"})
    assert settings.smtp_host == "smtp.example.com" and settings.smtp_port == 2525
    assert settings.smtp_from == "dart@example.com"
    assert (settings.smtp_username, settings.smtp_password, settings.smtp_starttls) == ("u", "p", True)
    assert settings.env_name == "prod" and settings.email_cc_on_error == ("a@example.com", "b@example.com")
    assert "'p'" not in repr(settings)  # the password stays out of logs
    defaults = load_settings({})
    assert defaults.smtp_host == "" and defaults.smtp_port == 25 and defaults.smtp_from == "dart@localhost"
    assert defaults.env_name == "local" and defaults.email_cc_on_error == () and defaults.smtp_starttls is False
    assert defaults.email_max_age_seconds == 86400 and defaults.smtp_timeout == 10
    with pytest.raises(SettingsError, match="DART_SMTP_PORT"):
        load_settings({"DART_SMTP_PORT": "twenty-five"})
    with pytest.raises(SettingsError, match="DART_SMTP_STARTTLS"):
        load_settings({"DART_SMTP_STARTTLS": "perhaps"})


def test_email_settings_from_the_config_file_with_the_environment_winning(tmp_path: Path) -> None:
    config = tmp_path / "dart.yaml"
    config.write_text("smtp_host: smtp.example.com\nsmtp_port: 2525\nenv_name: staging\n"
                      "email_cc_on_error: [a@example.com, b@example.com]\nemail_base_url: https://dart.example.com/\n"
                      "email_max_age_seconds: 0\n")
    settings = load_settings({"DART_CONFIG": str(config), "DART_SMTP_PORT": "2626"})
    assert (settings.smtp_host, settings.smtp_port, settings.env_name) == ("smtp.example.com", 2626, "staging")
    assert settings.email_cc_on_error == ("a@example.com", "b@example.com")
    assert settings.email_base_url == "https://dart.example.com" and settings.email_max_age_seconds == 0
    config.write_text("smtp_hots: smtp.example.com\n")
    with pytest.raises(SettingsError, match="unknown settings: smtp_hots"):
        load_settings({"DART_CONFIG": str(config)})


def test_notifier_from_settings(projected_store: EventStore, smtp: SmtpServer) -> None:
    quiet = notifier_from_settings(projected_store, load_settings({}))
    assert isinstance(quiet.mailer, NullMailer) and quiet.env_name == "local" and quiet.name == "notifier"
    notifier = notifier_from_settings(projected_store, load_settings({
        "DART_SMTP_HOST": "127.0.0.1", "DART_SMTP_PORT": str(smtp.port), "DART_ENV_NAME": "staging",
        "DART_EMAIL_CC_ON_ERROR": "team@example.com"}))
    assert isinstance(notifier.mailer, SmtpMailer)
    world = World(projected_store, smtp)
    world.notifier = notifier
    [mail] = world.handle(world.complete(world.action(), "FAILED", "via env"))
    assert mail.subject.startswith("[staging] dart: action failed ") and mail.to == ["team@example.com"]
    assert mail.sender == "dart@localhost"


def test_null_mailer_logs_instead_of_sending(projected_store: EventStore, caplog: pytest.LogCaptureFixture) -> None:
    mailer = NullMailer()
    world = World(projected_store, SmtpServer())  # never started: nothing may connect to it
    world.notifier = Notifier(EntityReader(projected_store), mailer, ENV, CC)
    with caplog.at_level("INFO", logger="dart.mailer"):
        world.notifier.handle([world.complete(world.action(), "FAILED", "logged")])
    assert [m.to for m in mailer.sent] == [CC]
    assert "no SMTP host configured" in caplog.text
