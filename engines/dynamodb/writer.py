"""Items written to one table by parallel BatchWriteItem calls: each item goes to the writer thread its key
hashes to, so rows of one key are written in the order they were read (the last one read wins, on every run),
and a batch never holds one key twice (DynamoDB refuses that). UnprocessedItems and throttling are retried
with exponential backoff and jitter; a Pacer holds the writes to a rate of capacity units per second."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from engines.dynamodb.attributes import AttributeValue, Key
from engines.dynamodb.table import TableError, error_code, reason

log = logging.getLogger("dart.engine.dynamodb")
BATCH_ITEMS = 25  # BatchWriteItem's maximum
WRITERS = 8  # threads sending batches; each keeps at most QUEUED batches waiting (bounded memory)
QUEUED = 4
RETRIES = 15  # tries of one batch's leftovers before the load fails
BACKOFF_BASE = 0.05
BACKOFF_CAP = 10.0
THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
             "InternalServerError", "ServiceUnavailable"}

Item = dict[str, AttributeValue]


class Pacer:
    """A shared budget of ``rate`` units per second (None: no limit), spent before each batch is sent: a writer
    waits until the units it takes fit the rate, and a batch that consumed more than it was charged for (items
    over 1 KB) pushes the next writers back by the difference. Up to ``burst`` seconds of unused rate may be
    spent at once, the way DynamoDB keeps unused capacity for bursts."""

    def __init__(self, rate: float | None, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate, self.burst, self.clock, self.sleep = rate, burst, clock, sleep
        self.lock = threading.Lock()
        self.due = clock() - burst  # when the units taken so far are paid for, at the rate (GCRA's TAT)
        self.waited = 0.0

    def take(self, units: float) -> None:
        if self.rate is None:
            return
        with self.lock:
            now = self.clock()
            self.due = max(self.due, now - self.burst) + units / self.rate
            wait = self.due - now
            if wait > 0:
                self.waited += wait
        if wait > 0:
            self.sleep(wait)

    def charge(self, units: float) -> None:
        """Units consumed beyond what ``take`` was given."""
        if self.rate is not None and units > 0:
            with self.lock:
                self.due += units / self.rate


@dataclass
class WriteStats:
    items: int = 0  # items DynamoDB accepted (a key's earlier row merged into its later one is not counted)
    batches: int = 0
    retried_items: int = 0  # UnprocessedItems sent again
    throttled_batches: int = 0
    consumed_units: float = 0.0


class BatchWriter:
    """``put(key, item)`` from one thread (the reader), ``close()`` to flush and wait; a failure of any writer
    thread surfaces at the next ``put`` or at ``close``; ``abort()`` stops the threads without writing what is
    still queued."""

    def __init__(self, dynamodb: Any, table: str, pacer: Pacer | None = None, writers: int = WRITERS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.dynamodb, self.table, self.pacer, self.sleep = dynamodb, table, pacer or Pacer(None), sleep
        self.buffers: list[dict[Key, Item]] = [{} for _ in range(writers)]
        self.queues: list[queue.Queue[list[Item] | None]] = [queue.Queue(QUEUED) for _ in range(writers)]
        self.stats = WriteStats()
        self.stats_lock = threading.Lock()
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(q,), name=f"dart-dynamodb-{i}", daemon=True)
                        for i, q in enumerate(self.queues)]
        for thread in self.threads:
            thread.start()

    def put(self, key: Key, item: Item) -> None:
        index = hash(key) % len(self.buffers)
        buffer = self.buffers[index]
        buffer[key] = item  # a key already in the batch: its later row replaces the earlier one
        if len(buffer) >= BATCH_ITEMS:
            self.buffers[index] = {}
            self._send(index, list(buffer.values()))

    def _send(self, index: int, batch: list[Item] | None) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queues[index].put(batch, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> WriteStats:
        for index, buffer in enumerate(self.buffers):
            if buffer:
                self._send(index, list(buffer.values()))
            self.buffers[index] = {}
        for index in range(len(self.queues)):
            self._send(index, None)
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise self.error
        return self.stats

    def abort(self) -> None:
        """Stop: the threads finish the batch in hand (a retry loop gives up) and drop what is queued."""
        self.stopping.set()
        for q in self.queues:
            try:
                q.put(None, timeout=60)  # the threads are draining, so there is room soon
            except queue.Full:
                log.warning("a DynamoDB writer thread did not drain its queue")
        for thread in self.threads:
            thread.join(timeout=60)

    def _run(self, batches: queue.Queue[list[Item] | None]) -> None:
        while (batch := batches.get()) is not None:
            if self.error is not None or self.stopping.is_set():
                continue  # drain, so the reader never blocks on a queue nobody empties
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - the reader re-raises it
                self.error = exc

    def _write(self, batch: list[Item]) -> None:
        """One batch, its UnprocessedItems retried with exponential backoff until none is left."""
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": item}} for item in batch]
        attempt = 0
        while requests and not self.stopping.is_set():
            self.pacer.take(len(requests))  # every put costs at least one unit
            try:
                answer = self.dynamodb.batch_write_item(RequestItems={self.table: requests},
                                                        ReturnConsumedCapacity="TOTAL")
            except ClientError as exc:
                if error_code(exc) not in THROTTLED:
                    raise TableError(f'cannot write to DynamoDB table "{self.table}": {reason(exc)}') from exc
                attempt = self._backoff(attempt, len(requests), reason(exc))
                with self.stats_lock:
                    self.stats.throttled_batches += 1
                continue
            consumed = sum(float(c.get("CapacityUnits") or 0) for c in answer.get("ConsumedCapacity") or [])
            left = (answer.get("UnprocessedItems") or {}).get(self.table) or []
            written = len(requests) - len(left)
            self.pacer.charge(consumed - len(requests))
            with self.stats_lock:
                self.stats.items += written
                self.stats.batches += 1
                self.stats.consumed_units += consumed
                self.stats.retried_items += len(left)
            if left:
                attempt = self._backoff(attempt, len(left), "UnprocessedItems")
            else:
                attempt = 0
            requests = left

    def _backoff(self, attempt: int, items: int, cause: str) -> int:
        attempt += 1
        if attempt > RETRIES:
            raise TableError(f'DynamoDB table "{self.table}" still refused {items} item(s) after {RETRIES} '
                             f"retries ({cause}); raise its write capacity or lower "
                             "write_capacity_utilization_percent")
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        log.info("%s: %d item(s) to retry in %.2f s (attempt %d)", cause, items, delay, attempt)
        self.sleep(delay)
        return attempt
