"""The catch-up subscription: feeds a handler every event after a checkpoint, in global order.

At least once: a handler may see an event again after a crash, so handlers either record what they handled
with their effects (``transactional=True`` commits the effects and the checkpoint together, which makes it
exactly once for effects in this database) or are idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from events.checkpoints import advance_checkpoint, read_checkpoint
from events.store import EventStore
from events.types import RecordedEvent

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[RecordedEvent]], None]

# Where the store wakes readers for other processes' appends too (PostgreSQL LISTEN/NOTIFY), a reader's poll
# is only a fallback (for a notification missed while the LISTEN connection was down) and may be this long.
FALLBACK_POLL = 2.0
STOP_CHECK = 0.25  # a waiting reader notices ``stop`` within this
TransactionalHandler = Callable[[sa.Connection, Sequence[RecordedEvent]], None]


class CatchUpSubscription:
    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: Handler | TransactionalHandler,
        *,
        types: Sequence[str] | None = None,
        transactional: bool = False,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        retry_interval: float = 1.0,
        checkpoint_interval: float = 0.0,
        linger: float = 0.0,
    ) -> None:
        self.store = store
        self.name = name
        self.handler = handler
        self.types = list(types) if types is not None else None
        self.transactional = transactional
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        # Non-transactional readers may save their position at most this often (0: after every batch);
        # a crash then repeats at most that much, which at-least-once handlers absorb.
        self.checkpoint_interval = checkpoint_interval
        # After handling a batch, wait this long before reading again, so a burst of appends is handled in
        # one batch (one transaction) instead of one each: for readers whose lag nobody waits on (statistics),
        # to keep them off the write lock and the CPU while the workflow path runs.
        self.linger = linger
        self._position: int | None = None
        self._saved: int | None = None
        self._saved_at = 0.0

    def position(self) -> int:
        with self.store.read_engine.connect() as conn:
            return read_checkpoint(conn, self.name)

    def run_once(self) -> int:
        """Handle the next batch, if any; returns how many events were handled."""
        if self._position is None:
            self._position = self._saved = self.position()
        position = self._position
        head = self.store.head_position()
        events = self.store.read_all(position, self.batch_size, types=self.types)
        if len(events) == self.batch_size:
            new_position = events[-1].global_position
        else:
            # Everything up to the head read before this batch is committed and was seen: with a types
            # filter the checkpoint may move past events this reader does not handle.
            new_position = max(head, events[-1].global_position if events else position)
        if new_position == position:
            self.flush()
            return 0
        if self.transactional:
            with self.store.transaction() as conn:
                if events:
                    self.handler(conn, events)  # type: ignore[call-arg, arg-type]
                self._advance(conn, new_position)
            return len(events)
        if events:
            # Outside any transaction: a handler may append its reactions, and on SQLite a write transaction
            # held here would lock it out. At least once: a crash before the checkpoint repeats the batch.
            self.handler(events)  # type: ignore[call-arg, arg-type]
        self._position = new_position
        if time.monotonic() - self._saved_at >= self.checkpoint_interval:
            self.flush()
        return len(events)

    def flush(self) -> None:
        """Persist the in-memory position (non-transactional readers may save it lazily)."""
        if self._position is None or self._position == self._saved:
            return
        with self.store.transaction() as conn:
            self._advance(conn, self._position)

    def _advance(self, conn: sa.Connection, new_position: int) -> None:
        if not advance_checkpoint(conn, self.name, int(self._saved or 0), new_position):
            self._position = self._saved = None  # another reader of this name moved it: start from there
            raise _LostRace()
        self._position = self._saved = new_position
        self._saved_at = time.monotonic()

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set; a failing batch is logged and retried."""
        while not stop.is_set():
            try:
                handled = self.run_once()
            except _LostRace:
                continue
            except Exception:
                log.exception("subscription %s failed; retrying", self.name)
                self._position = self._saved  # handle the failed batch again
                stop.wait(self.retry_interval)
                continue
            if self.linger and 0 < handled < self.batch_size:  # caught up: let the next burst gather
                stop.wait(self.linger)
            elif handled < self.batch_size:
                self._idle(stop)
        try:
            self.flush()
        except Exception:
            log.exception("subscription %s could not save its position on stop", self.name)

    def _idle(self, stop: threading.Event) -> None:
        """Wait for an append past the position (this process's, or any process's where the store hears
        them), or the poll interval."""
        timeout = self.poll_interval
        if self.store.wakes_across_processes:
            timeout = max(timeout, FALLBACK_POLL)
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self.store.wait_for_append(self._position or 0, min(left, STOP_CHECK), self.types):
                return

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name=f"sub:{self.name}", daemon=True)
        thread.start()
        return thread, stop


class _LostRace(Exception):
    """Another reader of the same name moved the checkpoint first; this batch was rolled back."""


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
