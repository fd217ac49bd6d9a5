"""Running async projections: each is a transactional catch-up subscription named after it, so its writes
and its checkpoint commit together and a crash never applies an event twice or skips one."""

from __future__ import annotations

import threading

from events.store import EventStore
from events.subscription import CatchUpSubscription
from projections.base import Projection


def subscription_for(store: EventStore, projection: Projection, batch_size: int = 1000,
                     linger: float = 0.0) -> CatchUpSubscription:
    return CatchUpSubscription(
        store,
        projection.name,
        projection.apply,
        types=projection.handled_types(store.registry.names()),
        transactional=True,
        batch_size=batch_size,
        linger=linger,
    )


class AsyncProjectionRunner:
    """Runs every async projection, each in its own thread."""

    def __init__(self, store: EventStore, projections: list[Projection], linger: float = 0.1) -> None:
        # ``linger``: async projections are read models nobody's next step waits on; batching their writes
        # over 0.1 s keeps them from taking turns with every append of the workflow path.
        self.subscriptions = [subscription_for(store, p, linger=linger) for p in projections if p.mode == "async"]
        self._threads: list[tuple[threading.Thread, threading.Event]] = []

    def catch_up(self) -> int:
        """Run every async projection to the head once (tests, CLI)."""
        total = 0
        for sub in self.subscriptions:
            while handled := sub.run_once():
                total += handled
        return total

    def start(self) -> None:
        self._threads = [sub.start() for sub in self.subscriptions]

    def stop(self, timeout: float = 5.0) -> None:
        for _, stop in self._threads:
            stop.set()
        for thread, _ in self._threads:
            thread.join(timeout)
