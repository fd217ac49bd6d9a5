"""``DART_HOME`` and the embedded database: the folder 0700 and the SQLite files 0600, since they hold the
credentials file, the secrets file and every event (API key hashes included)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from services.runtime.settings import Settings

HOME_MODE = 0o700
DATABASE_MODE = 0o600
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def prepare_home(settings: Settings) -> None:
    """Create ``DART_HOME`` 0700 (an existing one is tightened), and the SQLite file 0600 before SQLite opens
    it: SQLite gives its -wal and -shm files the database file's mode."""
    home = settings.home
    home.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
    _tighten(home, HOME_MODE)
    database = sqlite_path(settings.effective_database_url)
    if database is None:
        return
    database.parent.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, DATABASE_MODE))
    for suffix in _SQLITE_SUFFIXES:
        _tighten(Path(f"{database}{suffix}"), DATABASE_MODE)


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL; None for PostgreSQL and in-memory databases."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _tighten(path: Path, mode: int) -> None:
    """Take group and other permissions away from a file or folder this user owns (others' are left alone)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
        os.chmod(path, mode)
