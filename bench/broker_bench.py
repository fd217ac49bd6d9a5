"""Benchmark of production delivery: the relay's publish throughput (events read from the log, published and
confirmed by the broker, checkpoint moved) and the latency from an append to a kombu consumer's handle.

    .venv/bin/python -m bench.broker_bench [--broker amqp|sqs|both] [--events N] [--latency-runs N]
                                           [--amqp-url URL] [--sqs-url URL] [--database-url URL]

``--sqs-url`` names an SQS server (``sqs://key:secret@127.0.0.1:PORT``); without it a moto server is started
(moto slows down as a queue fills: keep ``--events`` small there, or point at fauxqs). The database defaults
to a throwaway SQLite file. The relay and the consumer run as threads of this process, so the relay is woken
by the append itself; a relay in its own process finds new events by polling (``poll_interval``), which adds
up to that interval. Prints a table, then one line ``BENCH_JSON {...}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from events.database import open_store
from events.store import EventStore
from events.streams import default_registry
from events.streams.event import EventCreated
from events.types import ExpectedVersion, RecordedEvent, StreamAppend
from services.delivery.kombu_consumer import KombuConsumer
from services.delivery.queues import connect, queue, transport_options_for
from services.delivery.relay import Relay

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


class _Timed:
    """A consumer noting when each event reached it."""

    name = "bench"

    def __init__(self) -> None:
        self.types: Sequence[str] = ["EventCreated"]
        self.arrived: dict[uuid.UUID, float] = {}
        self.changed = threading.Condition()

    def handle(self, events: Sequence[RecordedEvent]) -> None:
        now = time.perf_counter()
        with self.changed:
            for event in events:
                self.arrived.setdefault(event.event_id, now)
            self.changed.notify_all()

    def wait_for(self, event_id: uuid.UUID, timeout: float) -> float | None:
        with self.changed:
            self.changed.wait_for(lambda: event_id in self.arrived, timeout)
            return self.arrived.get(event_id)


def _append(store: EventStore, count: int, tag: str) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    for start in range(0, count, 100):
        out += store.append(*(StreamAppend(f"event-{tag}{i}", ExpectedVersion.NO_STREAM,
                                           [EventCreated({"name": f"{tag}{i}"})])
                              for i in range(start, min(start + 100, count))))
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_one(kind: str, url: str, options: dict[str, Any], database_url: str, events: int,
            latency_runs: int) -> dict[str, Any]:
    store = open_store(database_url, default_registry())
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    result: dict[str, Any] = {"broker": kind, "events": events}
    try:
        # Throughput: a backlog of ``events`` relayed to one group queue, from start to checkpoint at head.
        _append(store, events, "t")
        relay = Relay(store, url, options, {"bench": ["EventCreated"]}, {}, prefix, batch_size=500,
                      poll_interval=0.05)
        started = time.perf_counter()
        while relay.run_once():
            pass
        elapsed = time.perf_counter() - started
        relay.close()
        result["relay_events_per_s"] = round(events / elapsed, 1)

        # Drain the backlog through the consumer (its throughput), then measure one-at-a-time latency.
        timed = _Timed()
        consumer = KombuConsumer(timed, store, url, options, prefix, prefetch_count=50)
        consumer.start()
        started = time.perf_counter()
        with timed.changed:
            timed.changed.wait_for(lambda: len(timed.arrived) >= events, 600)
        result["consumer_events_per_s"] = round(len(timed.arrived) / (time.perf_counter() - started), 1)

        thread, stop = relay.start()
        latencies: list[float] = []
        for i in range(latency_runs):
            (event,) = store.append(StreamAppend(f"event-l{i}", ExpectedVersion.NO_STREAM,
                                                 [EventCreated({"name": f"l{i}"})]))
            appended = time.perf_counter()
            arrived = timed.wait_for(event.event_id, 30)
            if arrived is not None:
                latencies.append((arrived - appended) * 1000)
        stop.set()
        consumer.stop()
        thread.join(10)
        if latencies:
            result.update(latency_runs=len(latencies), p50_ms=round(_percentile(latencies, 0.5), 1),
                          p99_ms=round(_percentile(latencies, 0.99), 1),
                          mean_ms=round(statistics.fmean(latencies), 1))
    finally:
        store.close()
        with contextlib.suppress(Exception), connect(url, options) as conn:
            channel = conn.channel()
            for name in (f"{prefix}-bench", f"{prefix}-bench-dead"):
                queue(name)(channel).delete()
    return result


@contextlib.contextmanager
def _sqs_url(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    from bench.harness.moto import moto_server

    with moto_server() as endpoint:
        yield f"sqs://testing:testing@127.0.0.1:{endpoint.rsplit(':', 1)[1]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=("amqp", "sqs", "both"), default="both")
    parser.add_argument("--events", type=int, default=1000, help="backlog size (moto: keep it small)")
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--amqp-url", default=AMQP_URL)
    parser.add_argument("--sqs-url", default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true", help="100 events, 20 latency runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.latency_runs = 100, 20
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("amqp", "sqs") if args.broker == "both" else (args.broker,):
            database_url = args.database_url or f"sqlite:///{Path(tmp) / f'{kind}.db'}"
            if kind == "amqp":
                results.append(run_one(kind, args.amqp_url, transport_options_for(args.amqp_url),
                                       database_url, args.events, args.latency_runs))
                continue
            with _sqs_url(args.sqs_url) as url:
                options = transport_options_for(url, wait_time_seconds=1, polling_interval=0.01,
                                                visibility_timeout=30)
                events = args.events if args.sqs_url else min(args.events, 200)
                results.append(run_one(kind, url, options, database_url, events, args.latency_runs))
    print(f"{'broker':8} {'events':>7} {'relay ev/s':>11} {'consumer ev/s':>14} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r['broker']:8} {r['events']:>7} {r['relay_events_per_s']:>11} "
              f"{r['consumer_events_per_s']:>14} "
              f"{r.get('p50_ms', '-'):>8} {r.get('p99_ms', '-'):>8}")
    print("BENCH_JSON " + json.dumps({"delivery": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
