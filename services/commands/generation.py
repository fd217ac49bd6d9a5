"""The subscriptions worker (reference §9.1, §9.2): generating a subscription's listing in resumable steps,
closing the listing gap, and adding files that S3 notifications announce.

Generation is a chain of events, one S3 page per step:

    SubscriptionCreated (QUEUED)
      -> SubscriptionGenerationStarted (GENERATING, the resolved range)
      -> SubscriptionElementsAdded (source listing, listed_through K1, more) -> ... (listed_through Kn, more)
      -> SubscriptionElementsAdded (last page) + SubscriptionActivated (ACTIVE), in one append
      -> SubscriptionElementsAdded (source gap): keys that appeared after the last page was listed

The worker handles each event of the chain by listing the next page and appending it, guarded by the
subscription stream's version, with event ids derived from the event it answers. So a worker killed at any
point resumes from the last page the log holds, when its at-least-once delivery hands it that event again; a
step repeated after a crash appends nothing new; a step answering any event but the head of the chain (the
listing read model's ``last_event_id``) does nothing. A page is recorded whole or not at all.

Files created while the listing runs are not lost either way: a key that sorts after the listing's position is
listed, and one that sorts before it arrives by notification, which GENERATING subscriptions accept (a
decision: the original dropped those, docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from events.errors import ConcurrencyError, IdempotencyConflict
from events.streams.subscription import (
    SubscriptionActivated,
    SubscriptionElementsAdded,
    SubscriptionGenerationFailed,
    SubscriptionGenerationStarted,
    files_stream,
)
from events.types import Metadata, NewEvent, RecordedEvent, StreamAppend
from services.commands import elements
from services.commands.context import Orchestration, derived_event_id
from services.domain.s3_range import ListingError, Range, chunks, list_page, pages

log = logging.getLogger("dart.subscriptions")
ACTOR = "subscriptions"
RETRIES = 20
ACCEPTS_FILES = ("GENERATING", "ACTIVE")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _meta(cause: uuid.UUID) -> Metadata:
    return Metadata(actor=ACTOR, causation_id=str(cause))


def added_events(scope: Range, found: list[tuple[str, int]], source: str, meta: Metadata,
                 event_id: Callable[[int], uuid.UUID], listed_through: str | None = None,
                 more: bool = False) -> list[NewEvent]:
    """Element events for new files, at most ~1,000 keys each; at least one when listing (it records the
    listing's progress even when a page held no matching key)."""
    sizes = dict(found)
    prefix = scope.prefix
    groups = list(chunks(prefix, [path for path, _ in found])) or ([[]] if source == "listing" else [])
    return [NewEvent(SubscriptionElementsAdded(prefix, [[s, sizes[prefix + s]] for s in group], source,
                                               listed_through, more), meta, event_id(index))
            for index, group in enumerate(groups)]


class SubscriptionWorker:
    """The consumer of the ``subscriptions`` group: generation steps and the gap listing."""

    name = "subscriptions"
    types = sorted(["SubscriptionCreated", "SubscriptionGenerationStarted", "SubscriptionElementsAdded",
                    "SubscriptionActivated"])

    def __init__(self, orch: Orchestration, s3: Any, page_size: int = 1000,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.orch = orch
        self.store = orch.store
        self.s3 = s3
        self.page_size = page_size
        self.clock = clock

    def handle(self, batch: Sequence[RecordedEvent]) -> None:
        for event in batch:
            if event.type == "SubscriptionCreated":
                self.start(event.entity_id, event.event_id)
            elif event.type == "SubscriptionGenerationStarted":
                self.step(event.entity_id, event.event_id)
            elif event.type == "SubscriptionElementsAdded":
                if event.data.get("source") == "listing" and event.data.get("more"):
                    self.step(event.entity_id, event.event_id)
            elif event.type == "SubscriptionActivated":
                self.close_gap(event.entity_id, event.event_id)

    # ------------------------------------------------------------------------------------- the chain
    def start(self, subscription_id: str, cause: uuid.UUID) -> None:
        """QUEUED -> GENERATING, recording the resolved range."""
        for _ in range(RETRIES):
            row = self.orch.reader.row("subscription", subscription_id)
            if row is None or row.data.get("state") != "QUEUED":
                return
            dataset = self.orch.reader.row("dataset", str(row.data.get("dataset_id")))
            now = self.clock()
            try:
                if dataset is None:
                    raise ListingError(f"dataset {row.data.get('dataset_id')} does not exist")
                scope = Range.resolve(str(dataset.data.get("location")), row.data, now)
            except ListingError as exc:
                self.fail(subscription_id, str(exc), cause)
                return
            started = SubscriptionGenerationStarted({"state": "GENERATING", "generating_time": now.isoformat()},
                                                    scope.as_dict())
            try:
                self.store.append(StreamAppend(f"subscription-{subscription_id}", row.version, [
                    NewEvent(started, _meta(cause), derived_event_id(cause, "generating"))]))
            except (ConcurrencyError, IdempotencyConflict):
                continue
            return

    def step(self, subscription_id: str, cause: uuid.UUID) -> None:
        """List the page after the head of the chain and record it (with ACTIVE after the last page)."""
        row = self.orch.reader.row("subscription", subscription_id)
        head = elements.listing(self.store, subscription_id)
        if not _at_head(row, head, cause):
            return  # not the head of the chain: a stale or repeated delivery
        scope = Range(head.root, head.start_prefix, head.end_prefix, head.regex)
        try:
            page = list_page(self.s3, scope, head.listed_through, self.page_size)
        except ClientError as exc:
            if _transient(exc):
                raise  # S3 is struggling, not refusing: the delivery tries again
            self.fail(subscription_id, f"listing {scope.root}: {exc}", cause)
            return
        meta = _meta(cause)
        for _ in range(RETRIES):  # new files (notifications) may race the page: re-check, never re-list
            files_version = self.store.stream_version(files_stream(subscription_id))
            row = self.orch.reader.row("subscription", subscription_id)
            head = elements.listing(self.store, subscription_id)
            if not _at_head(row, head, cause):
                return
            known = elements.existing(self.store, subscription_id, [p for p, _ in page.elements])
            events = added_events(scope, [(p, s) for p, s in page.elements if p not in known], "listing", meta,
                                  lambda i: derived_event_id(cause, f"page:{i}"), page.listed_through, page.more)
            appends = [StreamAppend(files_stream(subscription_id), files_version, events)]
            if not page.more:
                appends.append(StreamAppend(f"subscription-{subscription_id}", row.version, [NewEvent(
                    SubscriptionActivated({"state": "ACTIVE", "initial_active_time": self.clock().isoformat()}),
                    meta, derived_event_id(cause, "active"))]))
            try:
                self.store.append(*appends)
            except (ConcurrencyError, IdempotencyConflict):
                continue
            return
        raise RuntimeError(f"subscription {subscription_id}: files kept arriving; this page is tried again")

    def close_gap(self, subscription_id: str, cause: uuid.UUID) -> None:
        """After activation, list again from the last key listed and add what appeared meanwhile."""
        head = elements.listing(self.store, subscription_id)
        if head is None:
            return
        scope = Range(head.root, head.start_prefix, head.end_prefix, head.regex)
        try:
            for page in pages(self.s3, scope, head.listed_through, self.page_size):
                add_files(self.orch, subscription_id, scope, page.elements, "gap", cause, states=("ACTIVE",))
        except (ClientError, BotoCoreError) as exc:
            log.warning("subscription %s: the gap listing failed (%s); notifications still add new files",
                        subscription_id, exc)

    def fail(self, subscription_id: str, reason: str, cause: uuid.UUID) -> None:
        for _ in range(RETRIES):
            row = self.orch.reader.row("subscription", subscription_id)
            if row is None or row.data.get("state") not in ("QUEUED", "GENERATING"):
                return
            log.warning("subscription %s FAILED: %s", subscription_id, reason)
            failed = SubscriptionGenerationFailed({"state": "FAILED", "failed_time": self.clock().isoformat()},
                                                  reason)
            try:
                self.store.append(StreamAppend(f"subscription-{subscription_id}", row.version, [
                    NewEvent(failed, _meta(cause), derived_event_id(cause, "failed"))]))
            except (ConcurrencyError, IdempotencyConflict):
                continue
            return

    # ---------------------------------------------------------------------------------- the kick
    def kick(self, stale_after: timedelta) -> int:
        """Re-drive generations that stopped moving (a delivery given up on, a worker that died while the broker
        was away): each QUEUED or GENERATING subscription whose last event is older than ``stale_after`` is
        handed the event at the head of its chain again. Idempotent; returns how many were kicked."""
        kicked = 0
        cutoff = self.clock() - stale_after
        for state in ("QUEUED", "GENERATING"):
            for row in self.orch.reader.find_by("subscription", state=state):
                subscription_id = row["id"]
                head = elements.listing(self.store, subscription_id)
                moved = max(_parse(row.get("updated")), _parse(_last_file_time(self.store, subscription_id)))
                if moved is not None and moved > cutoff:
                    continue
                if state == "QUEUED":
                    first = self.store.read_stream(f"subscription-{subscription_id}", to_version=1)
                    if first:
                        self.start(subscription_id, first[0].event_id)
                elif head is not None and head.more:
                    self.step(subscription_id, uuid.UUID(head.last_event_id))
                kicked += 1
        return kicked

    def start_periodic(self, interval: float, stale_after: timedelta = timedelta(seconds=60)
                       ) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.kick(stale_after)
                except Exception:  # S3 or the database away: the next round tries again
                    log.exception("subscription kick failed")

        thread = threading.Thread(target=loop, name="subscription-kick", daemon=True)
        thread.start()
        return thread, stop


def _at_head(row: Any, head: Any, cause: uuid.UUID) -> bool:
    return (row is not None and row.data.get("state") == "GENERATING" and head is not None
            and head.last_event_id == str(cause) and bool(head.more))


def _transient(exc: ClientError) -> bool:
    """S3 throttling or failing (5xx), as opposed to refusing (no bucket, access denied)."""
    error = exc.response.get("Error") or {}
    status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return status >= 500 or error.get("Code") in ("SlowDown", "Throttling", "RequestTimeout", "InternalError",
                                                  "ServiceUnavailable", "RequestTimeTooSkewed")


def _parse(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _last_file_time(store: Any, subscription_id: str) -> datetime | None:
    version = store.stream_version(files_stream(subscription_id))
    if not version:
        return None
    return store.read_stream(files_stream(subscription_id), from_version=version)[0].recorded_at


def add_files(orch: Orchestration, subscription_id: str, scope: Range, found: list[tuple[str, int]], source: str,
              cause: uuid.UUID, states: tuple[str, ...] = ACCEPTS_FILES) -> int:
    """Append the files of ``found`` the subscription does not hold yet; how many were new. The event ids
    derive from the cause and the files themselves, so a repeat of the same files is a no-op and different
    files never reuse an id. Raises when it keeps losing races, so the caller's delivery tries again."""
    store = orch.store
    for _ in range(RETRIES):
        files_version = store.stream_version(files_stream(subscription_id))
        row = orch.reader.row("subscription", subscription_id)
        if row is None or row.data.get("state") not in states:
            return 0
        known = elements.existing(store, subscription_id, [p for p, _ in found])
        new = [(p, s) for p, s in found if p not in known and scope.matches(p)]
        if not new:
            return 0
        digest = hashlib.sha1("\n".join(p for p, _ in new).encode()).hexdigest()
        events = added_events(scope, new, source, _meta(cause),
                              lambda i: derived_event_id(cause, f"{source}:{subscription_id}:{digest}:{i}"))
        try:
            store.append(StreamAppend(files_stream(subscription_id), files_version, events))
        except (ConcurrencyError, IdempotencyConflict):
            continue
        return len(new)
    raise RuntimeError(f"subscription {subscription_id}: files kept arriving; {len(found)} file(s) tried again")


# ---------------------------------------------------------------------------------- S3 notifications
def parse_notification(body: str) -> list[tuple[str, int]]:
    """The created files of an S3 event notification: raw (S3 -> SQS) or in an SNS envelope (S3 -> SNS ->
    SQS). Other records (removals, ``s3:TestEvent``) give nothing. Raises ValueError for a body that is not
    a notification at all."""
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("an S3 notification must be a JSON object")
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


def on_created_file(orch: Orchestration, path: str, size: int, cause: uuid.UUID) -> list[str]:
    """A new S3 file: an element of every GENERATING or ACTIVE subscription whose range holds it (repeats
    change nothing). Returns the subscriptions that gained it."""
    gained = []
    for head in elements.listings(orch.store):
        scope = Range(head.root, head.start_prefix, head.end_prefix, head.regex)
        if scope.matches(path) and add_files(orch, head.subscription_id, scope, [(path, size)], "notification",
                                             cause):
            gained.append(head.subscription_id)
    return gained


class NotificationPoller:
    """Reads S3 notifications from an SQS queue (boto3, any endpoint) and deletes each message once its
    files are recorded: a worker that dies first leaves it to be delivered again."""

    def __init__(self, orch: Orchestration, sqs: Any, queue: str, wait_seconds: int = 10) -> None:
        self.orch = orch
        self.sqs = sqs
        self.queue = queue
        self.wait_seconds = wait_seconds
        self._url: str | None = queue if queue.startswith(("http://", "https://")) else None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self.sqs.get_queue_url(QueueName=self.queue)["QueueUrl"]
        return self._url

    def poll_once(self) -> int:
        response = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                            WaitTimeSeconds=self.wait_seconds)
        handled = 0
        for message in response.get("Messages") or []:
            cause = uuid.uuid5(uuid.NAMESPACE_URL, f"sqs:{self.queue}:{message['MessageId']}")
            try:
                files = parse_notification(message["Body"])
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("dropping S3 notification %s: not a notification (%s)", message["MessageId"], exc)
                files = []
            for index, (path, size) in enumerate(files):
                on_created_file(self.orch, path, size, uuid.uuid5(cause, str(index)))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
        return handled

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()

        def loop() -> None:
            backoff = 0.5
            while not stop.is_set():
                try:
                    self.poll_once()
                    backoff = 0.5
                except Exception:  # the queue or the database is away: keep trying, more slowly
                    log.exception("S3 notification poll failed; retrying in %.1f s", backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)

        thread = threading.Thread(target=loop, name="s3-notifications", daemon=True)
        thread.start()
        return thread, stop


def s3_client(settings: Any) -> Any:
    return listing_client(settings.aws_region, settings.aws_endpoint_url or None)


def listing_client(region: str, endpoint_url: str | None, **credentials: Any) -> Any:
    """An S3 client for listing: timestamps are left as the strings S3 sent. Listings never read them, and
    botocore's parsing of every key's LastModified (dateutil) costs more than the rest of a page's handling."""
    import boto3
    import botocore.session
    from botocore.config import Config

    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=lambda value: value)
    return boto3.Session(botocore_session=session, **credentials).client(
        "s3", region_name=region, endpoint_url=endpoint_url,
        config=Config(s3={"addressing_style": "path"}) if endpoint_url else None)


def sqs_client(settings: Any) -> Any:
    import boto3

    return boto3.client("sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url or None)
