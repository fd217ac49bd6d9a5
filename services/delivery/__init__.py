"""Production message delivery (design.md §4): the relay publishes committed events to per-group queues, a
kombu adapter feeds them to the consumers, and an inbox takes external producers' PROCESS_TRIGGER messages.

Running them in a process (what ``dart relay`` and ``dart worker <name>`` do)::

    relay = Relay(store, broker_url, transport_options, routes_for([orchestrator, launcher]), outside, prefix)
    run_until_signalled(relay.run)                       # follows the log until SIGTERM / SIGINT

    worker = KombuConsumer(Orchestrator(orch), store, broker_url, transport_options, prefix)
    run_until_signalled(worker)                          # consumes ``<prefix>-orchestrator`` until a signal
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from services.delivery.queues import QueueNames, transport_options_for

__all__ = ["QueueNames", "routes_for", "run_until_signalled", "transport_options_for"]


def routes_for(consumers: Iterable[Any]) -> dict[str, list[str]]:
    """The relay's routes for these consumers: group name -> the event types it handles."""
    return {c.name: list(c.types) for c in consumers}


def run_until_signalled(target: Callable[[threading.Event], None] | Any,
                        signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Run a relay's ``run(stop)`` or a consumer (``run()`` / ``stop()``) in this thread until a signal.

    Call from the main thread (Python delivers signals there)."""
    stop = threading.Event()
    previous = {}

    def _stop(signum: int, frame: Any) -> None:
        stop.set()
        if hasattr(target, "stop"):
            target.stop()

    for signum in signals:
        previous[signum] = signal.signal(signum, _stop)
    try:
        consumer: Any = target
        if hasattr(consumer, "should_stop"):  # a kombu ConsumerMixin
            consumer.run()
        else:
            target(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
