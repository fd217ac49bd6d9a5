"""The DuckDB hook: the datastore's database file (default: one per datastore under the engine's data folder),
opened by one process at a time (a second waits for the file's lock), and DuckDB's errors in one line."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import duckdb

from engines.sdk import ActionContext, ActionFailure

DEFAULT_LOCK_TIMEOUT = 600.0
_HOLDER = re.compile(r"\(PID (\d+)\)")


def data_folder(env: dict[str, str] | None = None) -> Path:
    """``duckdb`` in the engines' data folder: ``$DART_ENGINE_DATA_DIR`` (a local engine is given
    ``$DART_HOME/engines``, not DART_HOME itself), else ``$DART_HOME/engines``, else under ``~/.dart``."""
    env = dict(os.environ) if env is None else env
    if env.get("DART_ENGINE_DATA_DIR"):
        return Path(env["DART_ENGINE_DATA_DIR"]).expanduser() / "duckdb"
    home = env.get("DART_HOME") or os.path.join(os.path.expanduser("~"), ".dart")
    return Path(home).expanduser() / "engines" / "duckdb"


def database_path(datastore: dict[str, Any], env: dict[str, str] | None = None) -> Path:
    """The datastore's ``path`` option (a relative one is under the data folder), else ``<datastore
    id>.duckdb`` in the data folder: each datastore its own file, so two marts never share a lock."""
    args = (datastore.get("data") or {}).get("args") or {}
    folder = data_folder(env)
    path = (
        Path(os.path.expanduser(str(args["path"]))) if args.get("path") else Path(f"{datastore['id']}.duckdb")
    )
    return path if path.is_absolute() else folder / path


def connect(
    path: Path, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, sleep: Any = time.sleep
) -> duckdb.DuckDBPyConnection:
    """The database, created if absent. DuckDB lets one process write a file (others cannot even read it), so
    actions of a datastore whose concurrency is above 1 run one after another: each waits for the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "Could not set lock" not in str(exc):
                raise ActionFailure(f"cannot open the DuckDB file {path}: {cause(exc)}") from exc
            if time.monotonic() + delay > deadline:
                pid = _HOLDER.search(str(exc))
                holder = f" (pid {pid.group(1)})" if pid else ""
                raise ActionFailure(
                    f"the DuckDB file {path} is still in use by another process{holder} after "
                    f"{lock_timeout:g} s"
                ) from exc
            sleep(delay)
            delay = min(1.0, delay * 2)


def options_of(context: ActionContext) -> tuple[Path, float]:
    args = context.datastore_args
    timeout = args.get("lock_timeout_seconds")
    return database_path(context.datastore), float(DEFAULT_LOCK_TIMEOUT if timeout is None else timeout)


def cause(exc: BaseException) -> str:
    """DuckDB's message without its LINE/caret lines: one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
