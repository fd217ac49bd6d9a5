"""Logging: one JSON object a line in production, readable text in a terminal; every long-running process
(``dart up``, ``dart api``, ``dart relay``, ``dart worker <name>``) also writes JSON lines to a rotating file
under ``DART_HOME/logs``, which several processes may share (gunicorn's workers, two schedulers)."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import logging.handlers
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from events.context import HANDLING

LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5


CONTEXT_FIELDS = ("event_id", "stream_id", "correlation_id")


def event_context(record: logging.LogRecord) -> dict[str, str]:
    """The event a consumer's log line is about (issue 15): given with the line (``extra``), else the event
    the logging thread is handling (events/context.py), else the one whose handling raised the logged error."""
    given = {key: getattr(record, key) for key in CONTEXT_FIELDS if hasattr(record, key)}
    if given:
        return given
    current = HANDLING.get()
    if current is None and record.exc_info and record.exc_info[1] is not None:
        current = getattr(record.exc_info[1], "dart_handling", None)
    return dict(current) if current else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(event_context(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, ending with the handled event's fields when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = event_context(record)
        return line + "".join(f" {key}={value}" for key, value in context.items()) if context else line


def configure_logging(fmt: str = "auto", level: int = logging.INFO) -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file several processes append to: each line is written under an exclusive ``flock`` of
    ``<file>.lock`` (opened per line, since a lock on a descriptor inherited across fork would be shared with
    the parent), after reopening the file if another process rotated it. A plain RotatingFileHandler per
    process would rotate on its own count and keep writing into the renamed file; lines would land in
    backups, or be deleted with them. Files are created 0600, like the first one."""

    def __init__(self, path: Path, max_bytes: int = LOG_FILE_BYTES, backups: int = LOG_FILE_BACKUPS) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.lock_path = f"{self.baseFilename}.lock"

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lock = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError:
            self.handleError(record)
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._reopen_if_rotated()
            super().emit(record)  # rolls over first if this line would pass max_bytes (measured at the end)
        finally:
            os.close(lock)  # releases the lock

    def _reopen_if_rotated(self) -> None:
        if self.stream is None:
            return
        try:
            current = os.stat(self.baseFilename).st_ino
        except FileNotFoundError:
            current = -1
        if current != os.fstat(self.stream.fileno()).st_ino:
            self.stream.close()
            self.stream = self._open()


def log_file_handler(folder: Path, name: str) -> SharedRotatingFileHandler:
    """A JSON-lines handler for ``folder/<name>.log`` (rotated at 10 MB, five kept). The folder is 0700 and
    the files 0600: lines name keys, entities and errors."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{name}.log"
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
    handler = SharedRotatingFileHandler(path)
    handler.setFormatter(JsonFormatter())
    return handler


def add_log_file(folder: Path, name: str) -> Path:
    """Also log every record of this process to ``folder/<name>.log``, beside the console."""
    handler = log_file_handler(folder, name)
    logging.getLogger().addHandler(handler)
    return Path(handler.baseFilename)
