"""What the engines' end-to-end tests share: a real `dart up` (SQLite) running engines as local engine processes
against a moto server, and the engines registered over its API by their own ``register`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.harness.api_client import Api
from bench.harness.moto import AWS_ENV
from bench.harness.stacks import KEY, SECRET, RunningDart

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def dart_up(tmp_path_factory: pytest.TempPathFactory, endpoint: str, engines: dict[str, str],
            **env: str) -> Iterator[RunningDart]:
    """`dart up` with ``engines`` (engine name: its ``python -m`` module) as local engine processes, AWS at the
    moto server ``endpoint``; ``env`` added to its environment."""
    local = {name: [sys.executable, "-m", module] for name, module in engines.items()}
    extra: dict[str, Any] = {"DART_LOCAL_ENGINES": json.dumps(local), "DART_AWS_ENDPOINT_URL": endpoint,
                             **AWS_ENV, **env}
    running = RunningDart(tmp_path_factory.mktemp("dart-engines"), None, **extra)
    try:
        yield running
    finally:
        running.stop()


def registered(dart: RunningDart, *modules: str) -> Api:
    """``dart``'s API once each engine module's own ``register`` command has registered it there."""
    for module in modules:
        done = subprocess.run([sys.executable, "-m", module, "register", "--api-url", dart.base + "/api/1",
                               "--token", f"{KEY}:{SECRET}"], check=False, cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    return dart.api()
