"""A moto server on loopback: the real AWS wire protocol (ECS, S3, SQS, SNS ...) for tests and benchmarks,
no mocks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server(module: str | None = None) -> Iterator[str]:
    """Start ``moto_server`` on a free port; yields its endpoint URL. With ``module``, ``python -m module`` (run
    from the repository's root) instead: a moto server with patches or endpoints of its own (its ``__main__``
    calls ``serve(patch)``, as tests/deploy/cfn_moto.py and tests/engines/emr_moto.py do)."""
    port = _free_port()
    if module:
        command = [sys.executable, "-m", module]
    else:
        command = [shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"]
    proc = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], cwd=REPO if module else None,
                            env={**os.environ, **AWS_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{module or 'moto_server'} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def serve(patch: Callable[[], None]) -> None:
    """Run moto's own server (``moto_server``'s arguments: ``-H HOST -p PORT``) in this process after ``patch()``."""
    patch()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])
