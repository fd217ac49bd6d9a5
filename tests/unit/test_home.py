"""DART_HOME and the embedded database are private to their user (issue 11: dart.db was 0644, DART_HOME 0755)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from services.runtime.home import prepare_home, sqlite_path
from services.runtime.settings import load_settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_home_is_0700_and_its_database_and_wal_files_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which gave 0755 and 0644
    try:
        home = tmp_path / "new" / "home"
        prepare_home(load_settings(env={"DART_HOME": str(home)}))
        assert mode(home) == 0o700
        database = home / "dart.db"
        assert mode(database) == 0o600
        with sqlite3.connect(database) as conn:  # SQLite gives -wal and -shm the database file's mode
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE t (x)")
            assert mode(Path(f"{database}-wal")) == 0o600
            assert mode(Path(f"{database}-shm")) == 0o600
    finally:
        os.umask(old)


def test_an_existing_home_and_database_are_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    (home / "dart.db").write_bytes(b"")
    os.chmod(home / "dart.db", 0o644)
    prepare_home(load_settings(env={"DART_HOME": str(home)}))
    assert mode(home) == 0o700 and mode(home / "dart.db") == 0o600


def test_only_sqlite_files_are_database_paths() -> None:
    assert sqlite_path("sqlite:////var/dart/dart.db") == Path("/var/dart/dart.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://u@h/db") is None
