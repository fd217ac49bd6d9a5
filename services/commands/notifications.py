"""The notifier consumer: the emails of reference §14, sent when §8.4 says.

Kinds: action failed or completed; workflow started, failed, completed or running late (past its workflow's
``sla_seconds``, issue 15); subscription completed or failed.
The subject is ``[<env_name>] dart: <what> <entity name> (<id>)``. Recipients are the entity's lists
(``on_failure_email``, ``on_success_email``, ``on_started_email``). Error mails cc ``cc_on_error``, or go
to it alone when the entity's list is empty; other mails are sent only when their list is set.

Delivery is at least once, so every mail is recorded per event id in ``notifications_sent`` (migration
0005): the row is claimed before sending, marked sent after the server accepted the mail, and released when
sending failed (``handle`` then raises and the event comes back). A redelivered event whose mail was sent
sends nothing. Only a crash between the server's acceptance and the mark can repeat a mail (SMTP offers no
way to make that atomic); the Message-ID is stable per event so receivers can spot that rare repeat. A claim
left by a process that died mid-send is taken over once its lease has passed; a live claim makes ``handle``
raise so the event is retried later, never sent by two replicas at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from events.streams import subscription as subscription_events
from events.timestamps import UTCDateTime
from events.types import RecordedEvent
from projections.reads import EntityReader, fold
from services.commands.tracing import handling
from services.domain.mail import Mail, Mailer
from services.domain.sla import late_message

log = logging.getLogger("dart.notifier")

_metadata = sa.MetaData()
notifications_sent = sa.Table(
    "notifications_sent",
    _metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # sending | sent
    sa.Column("claim", sa.String(36), nullable=False),
    sa.Column("recipients", sa.Text(), nullable=False),
    sa.Column("subject", sa.Text(), nullable=False),
    sa.Column("claimed_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
)

ERROR_KINDS = ("action failed", "workflow failed", "workflow running late", "subscription failed")


class MailInProgress(Exception):
    """Another notifier holds a live claim on this event's mail; the event is retried later."""


def address_list(value: str | None) -> tuple[str, ...]:
    return tuple(a.strip() for a in (value or "").split(",") if a.strip())


# ------------------------------------------------------------------------------------------ the consumer
def _addresses_of(data: Mapping[str, Any] | None, field: str) -> tuple[str, ...]:
    value = (data or {}).get(field) or []
    if isinstance(value, str):
        value = value.split(",")
    return tuple(dict.fromkeys(a.strip() for a in value if isinstance(a, str) and a.strip()))


@dataclass(frozen=True)
class Draft:
    """What an event calls for: the kind, the entity's own recipient list, and the text."""

    kind: str
    recipients: tuple[str, ...]
    category: str
    entity_name: str
    entity_id: str
    lines: list[tuple[str, Any]]
    error_message: str | None = None
    path: str = ""


SUBSCRIPTION_FIELD_EVENTS = sorted(cls.type_name for cls in subscription_events.EVENTS
                                   if cls not in subscription_events.ELEMENT_EVENTS)


class Notifier:
    name = "notifier"
    types = sorted([
        "ActionCompleted",
        "WorkflowInstanceCreated",  # created FAILED: no datastore or no actions (reference §8.1)
        "WorkflowInstanceStarted",
        "WorkflowInstanceCompleted",
        "WorkflowInstanceFailed",
        "WorkflowInstanceLate",  # past its workflow's sla_seconds (issue 15)
        "SubscriptionUpdated",
        "SubscriptionActivated",
        "SubscriptionGenerationFailed",
    ])

    def __init__(self, reader: EntityReader, mailer: Mailer, env_name: str = "local",
                 cc_on_error: Sequence[str] | str = (), *, base_url: str = "",
                 max_age: timedelta | None = timedelta(days=1), lease: timedelta = timedelta(seconds=60),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.reader = reader
        self.store = reader.store
        self.mailer = mailer
        self.env_name = env_name
        self.cc_on_error = address_list(cc_on_error) if isinstance(cc_on_error, str) else tuple(cc_on_error)
        self.base_url = base_url.rstrip("/")
        self.max_age = max_age if max_age else None
        self.lease = lease
        self.clock = clock

    # ------------------------------------------------------------------------------------ handling
    def handle(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            with handling(self.name, event):
                self._handle(event)

    def _handle(self, event: RecordedEvent) -> None:
        if self.max_age is not None and self.clock() - event.recorded_at > self.max_age:
            log.info("no mail for %s %s: older than %s", event.type, event.event_id, self.max_age)
            return
        draft = self.draft(event)
        if draft is None:
            return
        mail = self.compose(event, draft)
        if mail is None:
            log.info("%s for %s %s: nobody to send it to", draft.kind, draft.category, draft.entity_id)
            return
        self.deliver(event, draft.kind, mail)

    def draft(self, event: RecordedEvent) -> Draft | None:
        if event.type == "ActionCompleted":
            return self._action(event)
        if event.type.startswith("WorkflowInstance"):
            return self._workflow(event)
        if event.type in ("SubscriptionUpdated", "SubscriptionActivated", "SubscriptionGenerationFailed"):
            return self._subscription(event)
        return None

    def _as_of(self, event: RecordedEvent) -> dict[str, Any] | None:
        """The entity as the event left it: repeatable whatever happened to it since."""
        return fold(self.store, self.store.read_stream(event.stream_id, to_version=event.stream_version))

    def _action(self, event: RecordedEvent) -> Draft | None:
        state = (event.data.get("changes") or {}).get("state")
        if state not in ("FAILED", "COMPLETED"):
            return None
        action = self._as_of(event) or {}
        failed = state == "FAILED"
        recipients = _addresses_of(action, "on_failure_email" if failed else "on_success_email")
        if not failed and not recipients:
            return None
        datastore = self._row_data("datastore", action.get("datastore_id"))
        lines: list[tuple[str, Any]] = [
            ("action", f"{action.get('name')} ({event.entity_id})"),
            ("action type", action.get("action_type_name")),
            ("engine", action.get("engine_name")),
            ("state", state),
            ("datastore", _named(datastore, action.get("datastore_id"))),
            ("workflow", action.get("workflow_id")),
            ("workflow instance", action.get("workflow_instance_id")),
            ("queued", action.get("queued_time")),
            ("started", action.get("start_time")),
            ("ended", action.get("end_time")),
        ]
        return Draft("action failed" if failed else "action completed", recipients, "action",
                     str(action.get("name") or event.entity_id), event.entity_id, lines,
                     action.get("error_message") if failed else None, f"/api/1/action/{event.entity_id}")

    def _workflow(self, event: RecordedEvent) -> Draft | None:
        instance = self._as_of(event) or {}
        if event.type == "WorkflowInstanceStarted":
            kind, field = "workflow started", "on_started_email"
        elif event.type == "WorkflowInstanceCompleted":
            kind, field = "workflow completed", "on_success_email"
        elif event.type == "WorkflowInstanceFailed" or (event.type == "WorkflowInstanceCreated"
                                                         and instance.get("state") == "FAILED"):
            kind, field = "workflow failed", "on_failure_email"
        elif event.type == "WorkflowInstanceLate":
            kind, field = "workflow running late", "on_failure_email"
        else:
            return None
        workflow_id = str(instance.get("workflow_id") or "")
        workflow = self._row_data("workflow", workflow_id) or {}
        recipients = _addresses_of(workflow, field)
        if kind not in ERROR_KINDS and not recipients:
            return None
        lines: list[tuple[str, Any]] = [
            ("workflow", f"{workflow.get('name')} ({workflow_id})"),
            ("workflow instance", event.entity_id),
            ("state", instance.get("state")),
            ("trigger", instance.get("trigger_type")),
            ("retry", instance.get("retry_num")),
            ("datastore", instance.get("datastore_id")),
            ("queued", instance.get("queued_time")),
            ("started", instance.get("start_time")),
            ("ended", instance.get("end_time")),
        ]
        cause = instance.get("error_message") if kind == "workflow failed" else None
        if kind == "workflow running late":
            cause = late_message(event.data.get("sla_seconds"))
        return Draft(kind, recipients, "workflow", str(workflow.get("name") or workflow_id), workflow_id,
                     lines, cause,
                     f"/api/1/workflow/instance/{event.entity_id}")

    def _subscription(self, event: RecordedEvent) -> Draft | None:
        state = (event.data.get("changes") or {}).get("state")
        if state not in ("ACTIVE", "FAILED"):
            return None
        # The subscription's own events only: its element events change none of its fields, and a large
        # listing has thousands of them (reading them would make memory grow with the listing).
        lifecycle = self.store.read_all(0, 100_000, types=SUBSCRIPTION_FIELD_EVENTS, streams=[event.stream_id],
                                        until_position=event.global_position)
        before = fold(self.store, [e for e in lifecycle if e.global_position < event.global_position])
        previous = (before or {}).get("state")
        if state == "ACTIVE" and previous != "GENERATING":
            return None  # re-activated by a user (INACTIVE -> ACTIVE): nothing was generated
        if state == "FAILED" and previous == "FAILED":
            return None
        subscription = fold(self.store, lifecycle) or {}
        failed = state == "FAILED"
        recipients = _addresses_of(subscription, "on_failure_email" if failed else "on_success_email")
        if not failed and not recipients:
            return None
        dataset = self._row_data("dataset", subscription.get("dataset_id"))
        lines: list[tuple[str, Any]] = [
            ("subscription", f"{subscription.get('name')} ({event.entity_id})"),
            ("state", state),
            ("dataset", _named(dataset, subscription.get("dataset_id"))),
            ("queued", subscription.get("queued_time")),
            ("generating", subscription.get("generating_time")),
            ("active", subscription.get("initial_active_time")),
            ("failed", subscription.get("failed_time")),
        ]
        return Draft("subscription failed" if failed else "subscription completed", recipients,
                     "subscription", str(subscription.get("name") or event.entity_id), event.entity_id, lines,
                     (event.data.get("reason") or subscription.get("error_message")) if failed else None,
                     f"/api/1/subscription/{event.entity_id}")

    def _row_data(self, category: str, entity_id: Any) -> dict[str, Any] | None:
        if not entity_id:
            return None
        row = self.reader.row(category, str(entity_id))
        return dict(row.data) if row is not None else None

    # ------------------------------------------------------------------------------------ composing
    def compose(self, event: RecordedEvent, draft: Draft) -> Mail | None:
        if draft.kind in ERROR_KINDS:
            to = draft.recipients or self.cc_on_error
            cc = tuple(a for a in self.cc_on_error if a not in to) if draft.recipients else ()
        else:
            to, cc = draft.recipients, ()
        if not to:
            return None
        subject = f"[{self.env_name}] dart: {draft.kind} {draft.entity_name} ({draft.entity_id})"
        outcome = draft.kind.split(" ", 1)[1]
        body = [f"{draft.category} {draft.entity_name} ({draft.entity_id}): {outcome}", ""]
        body += [f"{label}: {value}" for label, value in draft.lines if value not in (None, "")]
        if draft.kind in ERROR_KINDS:
            body += ["", "error:", draft.error_message or "(no error message)"]
        body += ["", f"{self.base_url}{draft.path}",
                 "", f"event {event.event_id} ({event.type}) at {event.recorded_at.isoformat()}",
                 f"dart {self.env_name}"]
        message_id = f"<{event.event_id}.{draft.kind.replace(' ', '-')}@dart.{_atom(self.env_name)}>"
        return Mail(tuple(to), subject, "\n".join(body) + "\n", tuple(cc), message_id)

    # ------------------------------------------------------------------------------------ delivering
    def deliver(self, event: RecordedEvent, kind: str, mail: Mail) -> bool:
        """Send the event's mail unless it was sent already; False when it was."""
        claim = self._claim(str(event.event_id), kind, mail)
        if claim is None:
            log.info("%s for event %s was sent already", kind, event.event_id)
            return False
        try:
            self.mailer.send(mail)
        except BaseException:
            self._release(str(event.event_id), claim)
            raise
        self._mark_sent(str(event.event_id), claim)
        log.info("sent %s to %s: %s", kind, ",".join(mail.recipients), mail.subject)
        return True

    def _claim(self, event_id: str, kind: str, mail: Mail) -> str | None:
        """A claim token to send under, or None when the mail was sent already.

        Raises MailInProgress while another notifier's claim is live."""
        table = notifications_sent
        now = self.clock()
        token = str(uuid.uuid4())
        try:
            with self.store.transaction() as conn:
                row = conn.execute(sa.select(table).where(table.c.event_id == event_id)).first()
                if row is None:
                    conn.execute(table.insert().values(
                        event_id=event_id, kind=kind, state="sending", claim=token,
                        recipients=",".join(mail.recipients), subject=mail.subject, claimed_at=now))
                    return token
                if row.state == "sent":
                    return None
                if now - row.claimed_at < self.lease:
                    raise MailInProgress(f"{kind} for event {event_id} is being sent since {row.claimed_at}")
                taken = conn.execute(table.update()
                                     .where(table.c.event_id == event_id, table.c.claim == row.claim)
                                     .values(claim=token, claimed_at=now))
                if taken.rowcount != 1:
                    raise MailInProgress(f"{kind} for event {event_id} was claimed by another notifier")
                log.warning("taking over the stale claim on %s for event %s (claimed %s)", kind, event_id,
                            row.claimed_at)
                return token
        except sa.exc.IntegrityError as exc:  # another notifier inserted its claim first (PostgreSQL)
            raise MailInProgress(f"{kind} for event {event_id} was claimed by another notifier") from exc

    def _mark_sent(self, event_id: str, claim: str) -> None:
        table = notifications_sent
        with self.store.transaction() as conn:
            conn.execute(table.update().where(table.c.event_id == event_id, table.c.claim == claim)
                         .values(state="sent", sent_at=self.clock()))

    def _release(self, event_id: str, claim: str) -> None:
        table = notifications_sent
        try:
            with self.store.transaction() as conn:
                conn.execute(table.delete().where(table.c.event_id == event_id, table.c.claim == claim,
                                                  table.c.state == "sending"))
        except Exception:  # the lease frees it anyway; the send error is what the caller must see
            log.exception("could not release the claim on the mail for event %s", event_id)

    def sent(self, event_id: uuid.UUID | str) -> bool:
        table = notifications_sent
        with self.store.engine.connect() as conn:
            state = conn.execute(sa.select(table.c.state).where(table.c.event_id == str(event_id))).scalar()
        return state == "sent"


def _named(data: Mapping[str, Any] | None, entity_id: Any) -> str | None:
    if not entity_id:
        return None
    return f"{(data or {}).get('name')} ({entity_id})"


def _atom(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text) or "dart"
