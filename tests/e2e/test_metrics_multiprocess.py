"""``dart api`` with two gunicorn workers: ``/metrics`` counts the requests every worker answered (prometheus_client's
multiprocess mode), whichever worker answers the scrape, and the master removes the counting directory on exit."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.multiprocess import MultiProcessCollector

DART = [sys.executable, "-m", "services.runtime.cli"]
BATCH = 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _unauthorized_by_worker(directory: Path) -> dict[str, float]:
    """GET 401 answers per worker, read from each worker's own counter file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        total = 0.0
        for metric in MultiProcessCollector.merge([str(path)], accumulate=True):
            total += sum(s.value for s in metric.samples if s.name == "dart_http_requests_total"
                         and s.labels == {"method": "GET", "status": "401"})
        counts[path.stem.removeprefix("counter_")] = total
    return counts


def _scraped_unauthorized(base: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.search(r'^dart_http_requests_total\{method="GET",status="401"\} (\S+)$', text, re.MULTILINE)
    assert found is not None, text
    assert re.search(r"^dart_log_head_position \S+$", text, re.MULTILINE), text
    return float(found.group(1))


def test_metrics_count_the_requests_of_every_worker(tmp_path: Path) -> None:
    port, scratch = _free_port(), tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DART_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(DART_HOME=str(tmp_path / "home"), DART_LOG_FORMAT="text", TMPDIR=str(scratch))
    log = (tmp_path / "api.log").open("w")
    proc = subprocess.Popen([*DART, "api", "--port", str(port), "--workers", "2", "--threads", "4"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _status_or_none(base + "/health") != 200:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "api.log").read_text()
            time.sleep(0.1)
        [directory] = scratch.glob("dart-metrics-*")
        # Bursts of concurrent requests until both workers have answered some (the kernel picks the worker).
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while sent < BATCH * 40:
                statuses = list(pool.map(lambda _: _status(base + "/api/1/engine"), range(BATCH)))
                assert statuses == [401] * BATCH
                sent += BATCH
                per_worker = _unauthorized_by_worker(directory)
                if len([n for n in per_worker.values() if n > 0]) >= 2:
                    break
        assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker
        assert sum(per_worker.values()) == sent and max(per_worker.values()) < sent
        for _ in range(6):  # whichever worker answers the scrape counts all of them
            assert _scraped_unauthorized(base) == sent
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert proc.returncode == 0, (tmp_path / "api.log").read_text()
    assert not directory.exists()


def _status_or_none(url: str) -> int | None:
    try:
        return _status(url)
    except OSError:
        return None
