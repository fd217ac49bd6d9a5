"""The shared log file (services/runtime/logs.py): processes forked from the one that opened it (gunicorn's
workers) and processes that opened it on their own (two schedulers) append whole lines, and rotation, done
by whichever process crosses the size, loses none and leaves none in a file nobody reads."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path

from services.runtime.logs import JsonFormatter, SharedRotatingFileHandler, log_file_handler

LINES = 400
MAX_BYTES = 8_000  # a rotation every ~50 lines: many, contended


def _write(path: str, writer: str, reopen: bool, inherited: logging.Handler | None) -> None:
    handler = inherited
    if reopen or handler is None:
        handler = SharedRotatingFileHandler(Path(path), max_bytes=MAX_BYTES, backups=1000)
        handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.{writer}.{os.getpid()}")
    logger.propagate = False
    logger.addHandler(handler)
    for i in range(LINES):
        logger.warning("%s line %d %s", writer, i, "x" * 60)
    handler.close()


def test_forked_and_independent_writers_rotate_one_file_without_losing_a_line(tmp_path: Path) -> None:
    handler = log_file_handler(tmp_path / "logs", "api")
    handler.maxBytes, handler.backupCount = MAX_BYTES, 1000
    path = handler.baseFilename
    fork = multiprocessing.get_context("fork")
    writers = [fork.Process(target=_write, args=(path, f"forked{i}", False, handler)) for i in range(2)]
    writers += [fork.Process(target=_write, args=(path, f"own{i}", True, None)) for i in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    handler.close()
    files = sorted((tmp_path / "logs").glob("api.log*"))
    messages = [
        json.loads(line)["msg"]
        for f in files
        if not f.name.endswith(".lock")
        for line in f.read_text().splitlines()
    ]
    expected = {
        f"{w} line {i} {'x' * 60}" for w in ("forked0", "forked1", "own0", "own1") for i in range(LINES)
    }
    assert len(messages) == len(expected) and set(messages) == expected  # each line once, whole
    backups = [f for f in files if f.name[len("api.log.") :].isdigit()]
    assert len(backups) >= 10  # it did rotate, many times
    assert all(f.stat().st_size <= MAX_BYTES for f in files)
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
