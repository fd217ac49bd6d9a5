"""``dart up``: the whole system in one process on the embedded default (API and workers as threads), the API
served by waitress."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from waitress.server import create_server

from projections.runner import AsyncProjectionRunner
from services.commands.auth import first_start_admin_key
from services.commands.entities import EntityService
from services.runtime.builtin_engines import register_builtin_engines
from services.runtime.composition import api_app, build, start_workers
from services.runtime.logs import add_log_file
from services.runtime.sandbox import (
    DEFAULT_LINES,
    LocalAws,
    SandboxError,
    point_at,
    prepare_sandbox,
    record,
    refuse_production,
    start_local_aws,
)
from services.runtime.settings import Settings

log = logging.getLogger("dart.up")
HTTP_THREADS = 16  # requests answered at once; reading them takes no thread


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM/SIGINT: waitress's loop takes a SystemExit as the way to stop."""


def http_server(app: Any, settings: Settings) -> Any:
    """waitress, not the standard library's server: waitress reads each request (headers and body) in its
    event loop and hands only complete requests to its threads, so a silent or slow client holds no thread,
    and a connection silent for ``read_timeout_seconds`` is closed. Its own body limit is a backstop at twice
    the app's, so the app's 413 (with the JSON envelope) is the one clients normally see."""
    timeout = settings.read_timeout_seconds
    return create_server(
        app, host=settings.host, port=settings.port, threads=HTTP_THREADS,
        channel_timeout=timeout, cleanup_interval=max(1, min(timeout, 30)),
        connection_limit=1000, asyncore_use_poll=True,  # poll: no FD_SETSIZE ceiling of select()
        max_request_body_size=2 * settings.max_body_bytes, ident="dart",
    )


def run_up(settings: Settings, sandbox: bool = False, force_sandbox: bool = False,
           sandbox_lines: int = DEFAULT_LINES) -> int:
    aws = None
    if sandbox:
        try:
            refuse_production(settings, force_sandbox)
            aws = start_local_aws(settings.home)
        except SandboxError as exc:
            print(f"dart up: {exc}", file=sys.stderr)
            return 2
        settings = point_at(settings, aws)
        record(settings.home, aws.url, sandbox_lines, ready=False)  # a `dart sandbox` now waits for this start
    try:
        return _serve(settings, aws, sandbox_lines)
    finally:
        if aws is not None:
            aws.stop()


def _serve(settings: Settings, aws: LocalAws | None, sandbox_lines: int) -> int:
    container = build(settings)
    log_file = add_log_file(settings.home / "logs", "up")
    message = first_start_admin_key(container.store, settings.home, settings.bootstrap_api_key)
    if message:
        print(message, flush=True)
    register_builtin_engines(EntityService(container.store, container))  # the container is the kinds' context
    runner = AsyncProjectionRunner(container.store, container.projections)
    runner.start()
    server = http_server(api_app(container), settings)
    host, port = str(server.effective_host), int(server.effective_port)
    workers = start_workers(container, f"http://{host}:{port}/api/1")
    stopping = threading.Event()
    serving = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            if serving.is_set():
                raise _Stop(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"dart is up: API at http://{host}:{port}  (store: {settings.effective_database_url})", flush=True)
    print(f"admin key: {settings.home / 'credentials'} (or DART_BOOTSTRAP_API_KEY); health: /health; "
          f"logs: {log_file}; stop with Ctrl-C", flush=True)
    if aws is not None:
        threading.Thread(target=prepare_sandbox, args=(settings, aws, f"http://{host}:{port}/api/1", sandbox_lines),
                         name="sandbox", daemon=True).start()
    try:
        if not stopping.is_set():
            serving.set()
            server.run()  # returns once _Stop is raised (it closes the listening socket and the threads)
    except _Stop:
        pass  # raised before waitress's loop was entered, or after it
    finally:
        serving.clear()
        workers.stop()
        runner.stop()
        server.close()
        container.store.close()
    print("dart stopped", flush=True)
    return 0
