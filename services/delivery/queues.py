"""Every queue dart declares, named from one prefix, and the broker connection settings per transport.

All publishing goes to the default exchange (``exchange=""``, ``routing_key=<queue name>``) and every
producer declares the queues it publishes to: on SQS a message sent through a named exchange by a process
that never declared the queue is silently dropped, so no named exchange is used anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Queue

# SQS accepts 1-80 characters of letters, digits, '-' and '_'; the same names work on AMQP.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
DEFAULT_EXCHANGE = Exchange("", type="direct")
INBOX = "inbox"
DEAD_SUFFIX = "-dead"
OUTSIDE_INFIX = "out"

# The attempt counter the consumers keep on a message they republish for another try (design.md §4).
ATTEMPTS_HEADER = "x-dart-attempts"
ERROR_HEADER = "x-dart-error"


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"queue name {name!r} must be 1-80 letters, digits, '-' or '_' (an SQS rule)")
    return name


@dataclass(frozen=True)
class QueueNames:
    """The names of dart's queues under one prefix (e.g. ``dart-prod``).

    - ``<prefix>-<group>``: a consumer group's queue (the relay routes each event type to its groups)
    - ``<prefix>-<group>-dead``: where a group's message goes after it failed ``max_retries`` times
    - ``<prefix>-out-<reader>``: an outside reader's queue (every event, or chosen types)
    - ``<prefix>-inbox`` and ``<prefix>-inbox-dead``: external producers' PROCESS_TRIGGER messages
    """

    prefix: str = "dart"

    def __post_init__(self) -> None:
        _checked(self.prefix)

    def group(self, group: str) -> str:
        return _checked(f"{self.prefix}-{group}")

    def dead(self, group: str) -> str:
        return _checked(f"{self.prefix}-{group}{DEAD_SUFFIX}")

    def outside(self, reader: str) -> str:
        return _checked(f"{self.prefix}-{OUTSIDE_INFIX}-{reader}")

    def inbox(self) -> str:
        return self.group(INBOX)

    def inbox_dead(self) -> str:
        return self.dead(INBOX)


def queue(name: str) -> Queue:
    """A durable queue reached through the default exchange by its own name."""
    return Queue(_checked(name), exchange=DEFAULT_EXCHANGE, routing_key=name, durable=True, auto_delete=False)


def declare(channel: Any, names: Iterable[str]) -> None:
    """Declare the queues (idempotent on both transports; on SQS this creates them)."""
    for name in dict.fromkeys(names):
        queue(name)(channel).declare()


def is_sqs(url: str) -> bool:
    return url.split("://", 1)[0].lower() == "sqs"


def transport_options_for(
    url: str,
    *,
    region: str = "us-east-1",
    is_secure: bool | None = None,
    visibility_timeout: int = 60,
    wait_time_seconds: int = 2,
    polling_interval: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """kombu transport options for ``url``: SQS gets region, TLS, long polling and a short visibility timeout
    (kombu's default is 1,800 s: a message whose worker died would wait half an hour); AMQP gets publisher
    confirms, so a publish returns only once the broker has the message.

    SQS long polls return as soon as a message arrives, so the wait only bounds an idle poll: short (2 s), so
    a consumer's stop and kombu's turn between queues come soon, with no client-side sleep after an empty
    poll (``polling_interval`` 0: the long poll itself is the wait). An idle consumer makes one ReceiveMessage
    call per 2 s. AMQP consumers are pushed (basic.consume): no poll at all."""
    if is_sqs(url):
        options: dict[str, Any] = {
            "region": region,
            "visibility_timeout": visibility_timeout,
            "wait_time_seconds": wait_time_seconds,
            "polling_interval": polling_interval,
        }
        if is_secure is None:
            host = url.split("@")[-1].split("/")[0].split(":")[0]
            is_secure = host not in ("127.0.0.1", "localhost", "::1")
        options["is_secure"] = is_secure
    else:
        options = {"confirm_publish": True}
    options.update(extra or {})
    return options


def connect(url: str, transport_options: dict[str, Any] | None, heartbeat: float = 0) -> Connection:
    """A kombu connection (not yet connected). AMQP always gets publisher confirms."""
    options = dict(transport_options or {})
    if not is_sqs(url):
        options.setdefault("confirm_publish", True)
    return Connection(url, transport_options=options, heartbeat=0 if is_sqs(url) else heartbeat)
