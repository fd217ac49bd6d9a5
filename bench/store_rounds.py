"""How the store benchmark times its targets: writers as threads for a fixed time, the targets of one
measurement interleaved in rounds (rotating who goes first), each round's rate with the CPU this process
and the target's PostgreSQL backends spent per event."""

from __future__ import annotations

import random
import statistics
import threading
import time
from dataclasses import dataclass, field

from bench.pg_server import Server
from bench.store_targets import Step, Target


def run_timed(steps: list[Step], seconds: float) -> tuple[int, float]:
    """Run every step in its own thread (or this one, for a single writer) for ``seconds``.

    Returns (events written, seconds taken): from the start until the last writer finished its last append.
    """
    if len(steps) == 1:
        step, count = steps[0], 0
        started = time.perf_counter()
        deadline = started + seconds
        while True:
            count += step()
            now = time.perf_counter()
            if now >= deadline:
                return count, now - started
    counts = [0] * len(steps)
    ends = [0.0] * len(steps)
    errors: list[BaseException] = []
    gate = threading.Barrier(len(steps) + 1)
    start: list[float] = []

    def work(n: int) -> None:
        step, count = steps[n], 0
        try:
            gate.wait()
            deadline = start[0] + seconds
            while True:
                count += step()
                if time.perf_counter() >= deadline:
                    break
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)
        counts[n] = count
        ends[n] = time.perf_counter()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(len(steps))]
    for t in threads:
        t.start()
    start.append(time.perf_counter())
    gate.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts), max(ends) - start[0]


@dataclass
class Sample:
    rate: float  # events/s
    client_us: float  # CPU of this process per event, microseconds (every thread, GC included)
    server_us: float | None  # CPU of the target's PostgreSQL backends per event (None: server not local)


@dataclass
class Measured:
    key: str
    label: str
    unit: str
    samples: list[float]
    client_us: list[float] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)

    @property
    def value(self) -> float:
        return statistics.median(self.samples)

    def cpu(self) -> tuple[float | None, float | None]:
        return (
            statistics.median(self.client_us) if self.client_us else None,
            statistics.median(self.server_us) if self.server_us else None,
        )


def measure(server: Server, target: Target, steps: list[Step], seconds: float) -> Sample:
    before = server.backend_cpu(target.database)
    cpu0 = time.process_time()
    events, elapsed = run_timed(steps, seconds)
    client = time.process_time() - cpu0
    after = server.backend_cpu(target.database)
    backend = None
    if before is not None and after is not None:
        backend = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    return Sample(
        events / elapsed, client / events * 1e6, None if backend is None else backend / events * 1e6
    )


def interleaved(
    server: Server,
    targets: list[Target],
    writers: int,
    batch: int,
    rounds: int,
    seconds: float,
    warmup: float,
    rng: random.Random,
    analyze: bool = True,
) -> dict[str, list[Sample]]:
    """Each target's events/s per round, the targets taking turns and rotating who goes first.

    After the warm-up every target database is ANALYZEd, as autovacuum would have done on a live system: a
    plan cached by a session while its table was nearly empty is then made again (``analyze=False`` keeps
    the fresh-database behaviour; see docs/benchmarks.md for what it costs dart).
    """
    steps = {t.name: [t.writer(batch, random.Random(rng.random())) for _ in range(writers)] for t in targets}
    for t in targets:
        run_timed(steps[t.name], warmup)  # connections, prepared statements, caches
    if analyze:
        for t in targets:
            server.analyze(t.database)
    samples: dict[str, list[Sample]] = {t.name: [] for t in targets}
    for r in range(rounds):
        order = targets[r % len(targets):] + targets[: r % len(targets)]
        for t in order:
            samples[t.name].append(measure(server, t, steps[t.name], seconds))
    return samples

