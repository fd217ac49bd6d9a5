"""The running darts of bench/harness/stacks.py as the e2e tests use them: the wirings as pytest parameters,
and a machine that lacks what a wiring needs turned into the tests' verdict (no PostgreSQL server: skipped,
or a failure under DART_REQUIRE_POSTGRES; RabbitMQ down for production-amqp: a failure, .ci/run starts it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.harness import pg, stacks
from bench.harness.stacks import (
    CLUSTER,
    EMBEDDED,
    EMBEDDED_POSTGRES,
    EMBEDDED_SQLITE,
    KEY,
    PRODUCTION,
    PRODUCTION_AMQP,
    SECRET,
    InboxQueue,
    Production,
    Running,
    RunningDart,
    free_port,
    rabbit_up,
)

__all__ = [
    "CLUSTER", "EMBEDDED", "EMBEDDED_POSTGRES", "EMBEDDED_SQLITE", "KEY", "PRODUCTION", "PRODUCTION_AMQP", "SECRET",
    "TWO_WIRINGS", "WIRINGS", "InboxQueue", "Production", "Running", "RunningDart", "free_port", "pg_server_or_skip",
    "running",
]

# Every case of a module on every wiring; TWO_WIRINGS: the embedded default and production (the two).
WIRINGS = (EMBEDDED_SQLITE, pytest.param(EMBEDDED_POSTGRES, marks=pytest.mark.postgres),
           pytest.param(PRODUCTION, marks=pytest.mark.postgres))
TWO_WIRINGS = (EMBEDDED_SQLITE, pytest.param(PRODUCTION, marks=pytest.mark.postgres))


def pg_server_or_skip() -> str:
    server = pg.server_url_from_env()
    if server is None:
        pytest.skip(pg.SKIP_REASON)
    return server


@contextmanager
def running(wiring: str, home: Path, **options: Any) -> Iterator[Running]:
    """``bench.harness.stacks.running`` (same options), skipped without a PostgreSQL server where the wiring
    needs one, failed when production-amqp finds no RabbitMQ."""
    if wiring != EMBEDDED_SQLITE and options.get("server_url") is None:
        options["server_url"] = pg_server_or_skip()
    if wiring == PRODUCTION_AMQP and not rabbit_up():
        pytest.fail("RabbitMQ is not running on 127.0.0.1:5672 (.ci/run starts it)")
    with stacks.running(wiring, home, **options) as dart:
        yield dart
