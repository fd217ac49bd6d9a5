"""The one backoff schedule of delivery: how long the relay and the consumers wait after a failure (the broker
or the database away), how long a retried message stays hidden, and when an S3 notification comes back.
Exponential, from ``first`` doubling up to ``limit``."""

from __future__ import annotations

from dataclasses import dataclass

_MAX_DOUBLINGS = 64  # far past any limit, and short of a float overflow


@dataclass(frozen=True)
class Backoff:
    """Delays after consecutive failures: first, 2 x first, 4 x first ... never more than ``limit``."""

    first: float
    limit: float

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row (1: after the first)."""
        if failures < 1 or self.first <= 0:
            return 0.0
        return min(self.limit, self.first * 2.0 ** min(failures - 1, _MAX_DOUBLINGS))


class Failures:
    """A run of consecutive failures of one loop: ``next_delay()`` after each failure, ``reset()`` once the
    loop works again."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.count = 0

    def next_delay(self) -> float:
        self.count += 1
        return self.backoff.delay(self.count)

    def reset(self) -> None:
        self.count = 0
