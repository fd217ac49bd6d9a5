"""``dart up``: the whole system in one process on the embedded default (API and workers as threads)."""

from __future__ import annotations

import logging
import signal
import socketserver
import threading
from types import FrameType
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from projections.runner import AsyncProjectionRunner
from services.commands.auth import first_start_admin_key
from services.runtime.composition import api_app, build, start_workers
from services.runtime.settings import Settings

log = logging.getLogger("dart.up")


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def run_up(settings: Settings) -> int:
    container = build(settings)
    message = first_start_admin_key(container.store, settings.home, settings.bootstrap_api_key)
    if message:
        print(message, flush=True)
    runner = AsyncProjectionRunner(container.store, container.projections)
    runner.start()
    server = make_server(
        settings.host, settings.port, api_app(container),
        server_class=_ThreadingWSGIServer, handler_class=_QuietHandler,
    )
    host, port = str(server.server_address[0]), server.server_address[1]
    workers = start_workers(container, f"http://{host}:{port}/api/1")
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"dart is up: API at http://{host}:{port}  (store: {settings.effective_database_url})", flush=True)
    print(f"admin key: {settings.home / 'credentials'} (or DART_BOOTSTRAP_API_KEY); health: /health; "
          "stop with Ctrl-C", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        workers.stop()
        runner.stop()
        server.server_close()
        container.store.close()
    print("dart stopped", flush=True)
    return 0
