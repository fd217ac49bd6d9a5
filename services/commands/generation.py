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
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

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
from services.commands.retry import WORKER_CONFLICTS, StillConflicting, retry_on_conflict
from services.commands.tracing import handling
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
            with handling(self.name, event):
                self._handle(event)

    def _handle(self, event: RecordedEvent) -> None:
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

        def attempt() -> None:
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
            self.store.append(StreamAppend(f"subscription-{subscription_id}", row.version, [
                NewEvent(started, _meta(cause), derived_event_id(cause, "generating"))]))

        _gives_up_quietly(attempt, f"subscription {subscription_id}")

    def step(self, subscription_id: str, cause: uuid.UUID) -> None:
        """List the page after the head of the chain and record it (with ACTIVE after the last page)."""
        row = self.orch.reader.row("subscription", subscription_id)
        head = elements.listing(self.store, subscription_id)
        if row is None or head is None or not _at_head(row, head, cause):
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

        def attempt() -> None:  # new files (notifications) may race the page: re-check, never re-list
            files_version = self.store.stream_version(files_stream(subscription_id))
            row = self.orch.reader.row("subscription", subscription_id)
            head = elements.listing(self.store, subscription_id)
            if row is None or head is None or not _at_head(row, head, cause):
                return
            known = elements.existing(self.store, subscription_id, [p for p, _ in page.elements])
            events = added_events(scope, [(p, s) for p, s in page.elements if p not in known], "listing", meta,
                                  lambda i: derived_event_id(cause, f"page:{i}"), page.listed_through, page.more)
            appends = [StreamAppend(files_stream(subscription_id), files_version, events)]
            if not page.more:
                appends.append(StreamAppend(f"subscription-{subscription_id}", row.version, [NewEvent(
                    SubscriptionActivated({"state": "ACTIVE", "initial_active_time": self.clock().isoformat()}),
                    meta, derived_event_id(cause, "active"))]))
            self.store.append(*appends)

        try:
            retry_on_conflict(attempt, what=f"subscription {subscription_id}", tries=RETRIES,
                              conflicts=WORKER_CONFLICTS)
        except StillConflicting:
            raise RuntimeError(f"subscription {subscription_id}: files kept arriving; this page is tried again"
                               ) from None

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
        def attempt() -> None:
            row = self.orch.reader.row("subscription", subscription_id)
            if row is None or row.data.get("state") not in ("QUEUED", "GENERATING"):
                return
            log.warning("subscription %s FAILED: %s", subscription_id, reason)
            failed = SubscriptionGenerationFailed({"state": "FAILED", "failed_time": self.clock().isoformat()},
                                                  reason)
            self.store.append(StreamAppend(f"subscription-{subscription_id}", row.version, [
                NewEvent(failed, _meta(cause), derived_event_id(cause, "failed"))]))

        _gives_up_quietly(attempt, f"subscription {subscription_id}")

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
                moved = max((t for t in (_parse(row.get("updated")),
                                         _parse(_last_file_time(self.store, subscription_id))) if t is not None),
                            default=None)
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


def _gives_up_quietly(attempt: Callable[[], None], what: str) -> None:
    """A state change of the chain that may give up after RETRIES lost races: the stalled-generation kick
    hands the subscription its chain's head again later."""
    try:
        retry_on_conflict(attempt, what=what, tries=RETRIES, conflicts=WORKER_CONFLICTS)
    except StillConflicting:
        log.warning("%s kept changing; left to the next kick", what)


def _at_head(row: Any, head: Any, cause: uuid.UUID) -> bool:
    return row.data.get("state") == "GENERATING" and head.last_event_id == str(cause) and bool(head.more)


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

    def attempt() -> int:
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
        store.append(StreamAppend(files_stream(subscription_id), files_version, events))
        return len(new)

    try:
        return retry_on_conflict(attempt, what=f"subscription {subscription_id}", tries=RETRIES,
                                 conflicts=WORKER_CONFLICTS)
    except StillConflicting:
        raise RuntimeError(f"subscription {subscription_id}: files kept arriving; {len(found)} file(s) tried "
                           "again") from None


# ---------------------------------------------------------------------------------- S3 notifications
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
