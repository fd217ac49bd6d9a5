"""The S3 notification reader (reference §9.2): S3 ObjectCreated notifications, raw (S3 -> SQS) or in an SNS
envelope (S3 -> SNS -> SQS), consumed through kombu's SQS transport from the queue DART_S3_NOTIFICATION_QUEUE
names; each created file becomes an element of every subscription whose range holds it.

The queue is the operator's, fed by S3, not by kombu: its bodies are the raw JSON, which kombu's SQS transport
hands over as the message body, the SQS message riding along in ``delivery_info`` (as for the inbox). So the
reader never declares, creates or publishes to it: a message is acked (deleted) only after its files are
recorded; a body that is no notification is dropped with a warning; a message that fails is left to SQS,
visible again after a backoff, and the queue's own redrive policy, if any, dead-letters it.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from kombu import Consumer, Message, Queue

from services.commands.context import Orchestration
from services.commands.generation import on_created_file
from services.delivery.backoff import Backoff
from services.delivery.kombu_consumer import ConsumerLoop, message_text
from services.delivery.queues import DEFAULT_EXCHANGE, transport_options_for

log = logging.getLogger("dart.subscriptions")

MAX_HIDDEN_SECONDS = 900  # the longest a failed notification waits before SQS hands it out again


def parse_notification(body: str) -> list[tuple[str, int]]:
    """The created files of an S3 event notification: raw (S3 -> SQS) or in an SNS envelope (S3 -> SNS ->
    SQS). Other records (removals, ``s3:TestEvent``) give nothing. Raises ValueError for a body that is not
    a notification at all (every malformed body alike: the reader drops it)."""
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("an S3 notification must be a JSON object")  # noqa: TRY004 - one error for bad bodies
    if message.get("Type") == "Notification" or "Message" in message and "Records" not in message:
        message = json.loads(message.get("Message") or "{}")
        if not isinstance(message, dict):
            raise ValueError("the SNS envelope's Message must be a JSON object")
    found = []
    for record in message.get("Records") or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        obj = s3.get("object") or {}
        if not bucket or not obj.get("key"):
            continue
        found.append((f"s3://{bucket}/{unquote_plus(obj['key'])}", int(obj.get("size") or 0)))
    return found


def _is_url(queue: str) -> bool:
    return queue.startswith(("http://", "https://"))


def queue_name(queue: str) -> str:
    """The SQS name of a queue given by name or by URL (its last path segment)."""
    return queue.rstrip("/").rsplit("/", 1)[-1] if _is_url(queue) else queue


def notification_connection(endpoint_url: str | None, region: str, queue: str, *, wait_time_seconds: int = 2,
                            polling_interval: float = 0.0) -> tuple[str, dict[str, Any]]:
    """The kombu URL and transport options that reach ``queue`` on SQS at ``endpoint_url`` (None: AWS), with
    boto3's usual credentials. A queue given by URL is predefined, so kombu uses that URL as it is."""
    endpoint = urlsplit(endpoint_url) if endpoint_url else None
    url = f"sqs://{endpoint.netloc}" if endpoint is not None else "sqs://"
    extra = {"predefined_queues": {queue_name(queue): {"url": queue}}} if _is_url(queue) else None
    return url, transport_options_for(url, region=region, is_secure=endpoint is None or endpoint.scheme == "https",
                                      wait_time_seconds=wait_time_seconds, polling_interval=polling_interval,
                                      extra=extra)


class S3NotificationReader(ConsumerLoop):
    """Consumes the S3 notification queue (a name or a URL) and records the files it announces."""

    def __init__(self, orch: Orchestration, connection_url: str, transport_options: dict[str, Any] | None,
                 queue: str, *, retry_delay: float = 1.0, min_backoff: float = 0.5, max_backoff: float = 5.0,
                 **options: Any) -> None:
        super().__init__(connection_url, transport_options, queue_name(queue), min_backoff=min_backoff,
                         max_backoff=max_backoff, **options)
        self.orch = orch
        self.queue = queue  # as configured: the causes of its messages derive from it
        self.hidden = Backoff(retry_delay, MAX_HIDDEN_SECONDS)
        self.counts = {"handled": 0, "dropped": 0, "released": 0}

    def get_consumers(self, Consumer: Any, channel: Any) -> list[Consumer]:
        # Unacked messages are SQS's to hand out again, not kombu's to copy back into the queue on close.
        channel.do_restore = False
        if not _is_url(self.queue):
            # A queue that does not exist is an error to report (and retry), never one to create.
            channel.sqs().get_queue_url(QueueName=self.queue_name)
        source = Queue(self.queue_name, exchange=DEFAULT_EXCHANGE, routing_key=self.queue_name, no_declare=True)
        return [Consumer(queues=[source], on_message=self._on_message, prefetch_count=self.prefetch_count)]

    def _on_message(self, message: Message) -> None:
        try:
            self.process(message)
        except Exception:  # the database away, a subscription that kept changing: SQS hands it out again
            delay = self._release(message)
            log.warning("S3 notification %s failed; back in %d s", _message_id(message), delay, exc_info=True)
            return
        message.ack()

    def process(self, message: Message) -> None:
        """Record the files the notification announces (repeats change nothing)."""
        message_id = _message_id(message)
        cause = uuid.uuid5(uuid.NAMESPACE_URL, f"sqs:{self.queue}:{message_id}")
        try:
            files = parse_notification(message_text(message))
        except (ValueError, TypeError, KeyError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            log.warning("dropping S3 notification %s: not a notification (%s)", message_id, exc)
            self.counts["dropped"] += 1
            return
        for index, (path, size) in enumerate(files):
            on_created_file(self.orch, path, size, uuid.uuid5(cause, str(index)))
        self.counts["handled"] += 1

    def _release(self, message: Message) -> int:
        """Leave a failed message to SQS, visible again after a backoff that grows with its receive count;
        returns that delay in seconds."""
        sqs_message = message.delivery_info.get("sqs_message") or {}
        try:
            received = int((sqs_message.get("Attributes") or {}).get("ApproximateReceiveCount", 1))
        except (TypeError, ValueError):
            received = 1
        delay = int(self.hidden.delay(received))
        try:
            message.channel.sqs().change_message_visibility(
                QueueUrl=message.delivery_info["sqs_queue"], ReceiptHandle=sqs_message["ReceiptHandle"],
                VisibilityTimeout=delay)
        except (BotoCoreError, ClientError, KeyError) as error:  # it comes back after the queue's own timeout
            log.warning("S3 notification %s: could not set its visibility (%s)", _message_id(message), error)
        # The virtual transport's ack only forgets the delivery here (frees its prefetch slot); unlike
        # message.ack() it does not delete the message from SQS.
        message.channel.qos.ack(message.delivery_tag)
        self.counts["released"] += 1
        return delay


def _message_id(message: Message) -> str | None:
    return (message.delivery_info.get("sqs_message") or {}).get("MessageId")
