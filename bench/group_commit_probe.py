"""How much would group commit give dart's concurrent single-event appends? A measurement, not a design.

    .venv/bin/python -m bench.group_commit_probe [--database-url URL] [--rounds N] [--seconds S] [--quick]

dart orders appends with one advisory lock that is held until the transaction's commit record is flushed, so
appends commit one after another and each pays a whole WAL flush: with 8 writers the store runs at about
1 / (work under the lock + flush), whatever the writers do. This probe puts a combiner in front of an
unchanged store: writer threads hand their single-stream appends to one committer thread, which sends
everything waiting as ONE ``store.append(*parts)`` (one transaction, one lock hold, one flush) and, if that
append fails, retries the parts one by one so each writer gets its own result or error. It compares that with
the plain store, the eventsourcing recorder and bare INSERTs (store_bench's targets), interleaved.
"""

from __future__ import annotations

import argparse
import queue
import random
import statistics
import sys
import threading
from concurrent.futures import Future

from bench.pg_server import DEFAULT_SERVER_URL, Server
from bench.store_rounds import interleaved
from bench.store_targets import (
    METADATA,
    BareTarget,
    BenchWorkflowUpdated,
    DartTarget,
    PeerTarget,
    Step,
    Streams,
    Target,
    make_payloads,
)
from events.store import EventStore
from events.types import NewEvent, RecordedEvent, StreamAppend

MAX_GROUP = 64


class Combiner:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.waiting: queue.SimpleQueue[tuple[StreamAppend, Future[list[RecordedEvent]]]]
        self.waiting = queue.SimpleQueue()
        self.group_sizes: list[int] = []
        threading.Thread(target=self._run, daemon=True).start()

    def append(self, part: StreamAppend) -> list[RecordedEvent]:
        done: Future[list[RecordedEvent]] = Future()
        self.waiting.put((part, done))
        return done.result()

    def _run(self) -> None:
        while True:
            group = [self.waiting.get()]
            streams = {group[0][0].stream_id}
            held = []
            while len(group) < MAX_GROUP:
                try:
                    item = self.waiting.get_nowait()
                except queue.Empty:
                    break
                if item[0].stream_id in streams:  # one part per stream in an append: the rest wait a turn
                    held.append(item)
                else:
                    streams.add(item[0].stream_id)
                    group.append(item)
            for item in held:
                self.waiting.put(item)
            self.group_sizes.append(len(group))
            try:
                recorded = self.store.append(*(part for part, _ in group))
                by_id = {e.event_id: e for e in recorded}
                for part, done in group:
                    done.set_result([by_id[n.event_id] for n in part.events])
            except Exception:  # noqa: BLE001 - someone's part failed: give each part its own answer
                for part, done in group:
                    try:
                        done.set_result(self.store.append(part))
                    except Exception as e:  # noqa: BLE001
                        done.set_exception(e)


class GroupedDartTarget(DartTarget):
    name = "dart+group-commit"

    def __init__(self, url: str, payloads: list) -> None:  # type: ignore[type-arg]
        super().__init__(url, payloads)
        self.combiner = Combiner(self.store)

    def writer(self, batch: int, rng: random.Random) -> Step:
        streams, payloads, combiner = Streams(rng), self.payloads, self.combiner
        k = rng.randrange(len(payloads))

        def step() -> int:
            nonlocal k
            i = streams.next()
            events = []
            for _ in range(batch):
                k = (k + 1) % len(payloads)
                events.append(NewEvent(BenchWorkflowUpdated(**payloads[k]), METADATA))
            combiner.append(StreamAppend(streams.ids[i], streams.versions[i], events))
            streams.versions[i] += batch
            return batch

        return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.group_commit_probe", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 0.3 s: that it runs (CI)")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 2, 0.3

    server = Server(args.database_url)
    server.prefix += "_group"
    payloads = make_payloads(random.Random(3))
    targets: list[Target] = []
    try:
        dbs = [server.create(x) for x in ("dart", "grouped", "peer", "bare")]
        targets = [
            DartTarget(server.sqlalchemy_url(dbs[0]), payloads),
            GroupedDartTarget(server.sqlalchemy_url(dbs[1]), payloads),
            PeerTarget(server.conninfo(dbs[2]), payloads),
            BareTarget(server.sqlalchemy_url(dbs[3]), server.conninfo(dbs[3]), payloads),
        ]
        for t, db in zip(targets, dbs):
            t.database = db
        grouped = targets[1]
        assert isinstance(grouped, GroupedDartTarget)
        for writers in args.writers:
            got = interleaved(
                server, targets, writers, 1, args.rounds, args.seconds, 0.5, random.Random(writers)
            )
            sizes = grouped.combiner.group_sizes
            print(f"single-event appends, {writers} writer(s), {args.rounds} rounds x {args.seconds:g}s "
                  f"(mean group: {statistics.mean(sizes[-5000:]):.1f} appends per transaction)")
            print(f"  {'target':<20}{'events/s':>10}{'cpu us':>9}{'pg us':>8}   rounds")
            for name, samples in got.items():
                pgs = [s.server_us for s in samples if s.server_us is not None]
                print(f"  {name:<20}{statistics.median(s.rate for s in samples):>10,.0f}"
                      f"{statistics.median(s.client_us for s in samples):>9,.0f}"
                      f"{statistics.median(pgs) if pgs else float('nan'):>8,.0f}   "
                      + " ".join(f"{s.rate:,.0f}" for s in samples))
            sizes.clear()
    finally:
        for t in targets:
            t.close()
        server.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
