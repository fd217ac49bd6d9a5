"""The inbox: external producers' messages in the original formats (reference §11.1) — a PROCESS_TRIGGER
body as raw JSON, as base64 of the JSON (boto's JSONMessage), or inside an SNS envelope — on the queue
``<prefix>-inbox``. An "event" trigger message fires every ACTIVE trigger on that ACTIVE event; anything
else is logged and dead-lettered to ``<prefix>-inbox-dead``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from typing import Any

from kombu import Message

from services.commands.context import Orchestration
from services.commands.triggers import on_external_event
from services.delivery.kombu_consumer import QueueWorker, Unprocessable, message_text
from services.delivery.queues import QueueNames
from services.delivery.records import record_handled, was_handled

log = logging.getLogger("dart.inbox")

INBOX_CONSUMER = "inbox"
# Causes of inbox messages: uuid5(INBOX_NAMESPACE, <message id>), so a redelivery fires nothing new.
INBOX_NAMESPACE = uuid.UUID("6f0d4c52-7a43-5d0e-9c55-1f0b8a3e2d71")
CAUSE_HEADER = "x-dart-cause"
_MAX_NESTING = 3


def parse_inbox_message(body: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """The message a producer sent, unwrapped from base64 and SNS envelopes.

    Pure. Raises ValueError saying what is wrong for anything that is not a JSON object with a ``call``.
    """
    return _parse(body, 0)


def _parse(body: Any, depth: int) -> dict[str, Any]:
    if depth > _MAX_NESTING:
        raise ValueError("inbox message: too many nested envelopes")
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"inbox message: body is not UTF-8 text ({exc})") from None
    if isinstance(body, str):
        body = _json_or_base64_json(body)
    if not isinstance(body, dict):
        # ValueError like every other malformed body: callers turn it into Unprocessable.
        raise ValueError(f"inbox message: expected a JSON object, got {type(body).__name__}")  # noqa: TRY004
    if body.get("Type") == "Notification" and "Message" in body:
        return _parse(body["Message"], depth + 1)  # SNS envelope: the producer's body is its Message
    call = body.get("call")
    if not isinstance(call, str) or not call:
        raise ValueError(f"inbox message: no 'call' in a JSON object with keys {sorted(body)[:10]}")
    return body


def _json_or_base64_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        raise ValueError("inbox message: empty body")
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    try:
        decoded = base64.b64decode(stripped, validate=True).decode("utf-8")
        return json.loads(decoded)
    except (binascii.Error, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(
            f"inbox message: body is neither JSON nor base64 of JSON: {stripped[:80]!r}") from None


def sns_message_id(body: str) -> str | None:
    """The MessageId of an SNS envelope (stable across SNS redeliveries), else None."""
    try:
        outer = _json_or_base64_json(body)
    except ValueError:
        return None
    if isinstance(outer, dict) and outer.get("Type") == "Notification":
        message_id = outer.get("MessageId")
        return message_id if isinstance(message_id, str) and message_id else None
    return None


def message_cause(message: Message, body: str) -> uuid.UUID:
    """The cause every effect of this message derives its ids from: the same for every delivery of it.

    A retried copy carries it in a header. Otherwise it comes from the SNS MessageId, the SQS MessageId or the
    AMQP message_id. An AMQP message without a message_id has nothing a redelivery keeps but its body, and the
    original format's bodies repeat (the same event fires many times): a body hash would fire an event once
    ever, so such a message gets a fresh cause and AMQP producers should set message_id."""
    headers = message.headers or {}
    if headers.get(CAUSE_HEADER):
        try:
            return uuid.UUID(str(headers[CAUSE_HEADER]))
        except ValueError:
            log.warning("inbox: ignoring a malformed %s header %r", CAUSE_HEADER, headers[CAUSE_HEADER])
    identity = sns_message_id(body)
    if identity is None:
        sqs_message = message.delivery_info.get("sqs_message") or {}
        identity = sqs_message.get("MessageId") or (message.properties or {}).get("message_id")
    if identity is None:
        if message.delivery_info.get("redelivered"):
            log.warning("inbox: a redelivered message without a message id; its effects may repeat")
        return uuid.uuid4()
    return uuid.uuid5(INBOX_NAMESPACE, f"id:{identity}")


class InboxConsumer(QueueWorker):
    """Consumes ``<prefix>-inbox``: PROCESS_TRIGGER "event" messages fire the event's triggers."""

    name = INBOX_CONSUMER

    def __init__(
        self,
        orch: Orchestration,
        connection_url: str,
        transport_options: dict[str, Any] | None,
        prefix: str = "dart",
        max_retries: int = 5,
        **options: Any,
    ) -> None:
        names = QueueNames(prefix)
        super().__init__(connection_url, transport_options, names.inbox(), names.inbox_dead(),
                         max_retries=max_retries, **options)
        self.orch = orch
        self.store = orch.store
        self._causes: dict[int, uuid.UUID] = {}  # the cause of the message being processed, for its retry

    def retry_headers(self, message: Message) -> dict[str, Any]:
        cause = self._causes.pop(id(message), None)
        return {CAUSE_HEADER: str(cause)} if cause is not None else {}

    def process(self, message: Message) -> None:
        try:
            body = message_text(message)
        except UnicodeDecodeError as exc:
            raise Unprocessable(f"inbox message: body is not UTF-8 text ({exc})") from exc
        try:
            parsed = parse_inbox_message(body)
        except ValueError as exc:
            raise Unprocessable(str(exc)) from exc
        cause = self._causes[id(message)] = message_cause(message, body)
        if was_handled(self.store, INBOX_CONSUMER, cause):
            self.counts["skipped"] += 1
        else:
            self.dispatch(parsed, cause)
            record_handled(self.store, INBOX_CONSUMER, cause)
            self.counts["handled"] += 1
        del self._causes[id(message)]  # on failure retry_headers takes it

    def dispatch(self, parsed: dict[str, Any], cause: uuid.UUID) -> None:
        call, kind = parsed.get("call"), parsed.get("trigger_type_name")
        if call == "PROCESS_TRIGGER" and kind == "event":
            message = parsed.get("message")
            event_id = message.get("event_id") if isinstance(message, dict) else None
            if not isinstance(event_id, str) or not event_id:
                raise Unprocessable("inbox message: PROCESS_TRIGGER event without message.event_id")
            fired = on_external_event(self.orch, event_id, cause)
            log.info("inbox: event %s %s (cause %s)", event_id,
                     "fired its triggers" if fired else "is missing or INACTIVE: nothing fired", cause)
            return
        raise Unprocessable(f"inbox message: unsupported call {call!r} (trigger_type_name {kind!r})")
