"""``dart api``: the production WSGI entry point, served by gunicorn (``services.runtime.gunicorn_app:application``
also works with any WSGI server)."""

from __future__ import annotations

import logging
from typing import Any

import falcon
from gunicorn.app.base import BaseApplication

from services.api.app import create_app
from services.commands.auth import first_start_admin_key, has_admin_key
from services.runtime.composition import build
from services.runtime.settings import Settings, load_settings

log = logging.getLogger("dart.api")


def production_app(settings: Settings | None = None) -> falcon.App:
    """The app for one worker process: its own store connections, migrations already applied."""
    return create_app(build(settings or load_settings(), migrate=False))


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


def serve(settings: Settings, workers: int, threads: int) -> int:
    container = build(settings)  # apply migrations once, before the workers start
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
        "timeout": 60,
    }
    _Gunicorn(settings, options).run()
    return 0
