"""``dart api``: the REST API served by gunicorn workers, which count requests for ``/metrics`` together
through prometheus_client's multiprocess mode (the directory is made by the CLI before anything imports it)."""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import falcon
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from prometheus_client import multiprocess, values

from services.commands.auth import first_start_admin_key, has_admin_key
from services.runtime.composition import api_app, build
from services.runtime.logs import log_file_handler
from services.runtime.settings import Settings, load_settings

log = logging.getLogger("dart.api")


def production_app(settings: Settings | None = None) -> falcon.App:
    """The app for one worker process: its own store connections, migrations already applied."""
    return api_app(build(settings or load_settings(), migrate=False))


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> falcon.App:
        return production_app(self.settings)


def _logger_class(handler: logging.Handler) -> type[Logger]:
    """gunicorn's own loggers (its error log and the access log) do not propagate to the root: this logger
    class sends their lines to the API's log file too."""

    class _Logger(Logger):  # type: ignore[misc]
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            self.error_log.addHandler(handler)
            self.access_log.addHandler(handler)

    return _Logger


def _child_exit(server: Any, worker: Any) -> None:
    # A dead worker's counts stay in the directory (they were answered); only its live gauges go.
    multiprocess.mark_process_dead(worker.pid)


def _metrics_directory() -> str:
    """The directory the workers count requests in, checked to be in force: had prometheus_client been
    imported before PROMETHEUS_MULTIPROC_DIR was set, each worker would count only for itself, silently."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory or not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError("dart api: PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported "
                           "(the dart command does it), or /metrics would count one worker's requests only")
    return directory


def serve(settings: Settings, workers: int, threads: int) -> int:
    directory = _metrics_directory()
    master = os.getpid()
    container = build(settings)  # apply migrations once, before the workers start
    # One api.log for the master and every worker (they inherit the handler when forked): its lock makes
    # their lines whole and its rotation safe (services/runtime/logs.py).
    file_handler = log_file_handler(settings.home / "logs", "api")
    logging.getLogger().addHandler(file_handler)
    if settings.bootstrap_api_key:
        first_start_admin_key(container.store, settings.home, settings.bootstrap_api_key)
    elif not has_admin_key(container.store):
        log.warning("no admin API key exists: create one with `dart keys create --user EMAIL --admin` "
                    "or set DART_BOOTSTRAP_API_KEY=key:secret")
    container.store.close()
    options = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": "-",
        "logger_class": _logger_class(file_handler),
        "timeout": 60,
        "child_exit": _child_exit,
    }
    try:
        _Gunicorn(settings, options).run()
    finally:
        if os.getpid() == master:  # a worker's exit unwinds through here too: only the master cleans up
            shutil.rmtree(directory, ignore_errors=True)
    return 0
