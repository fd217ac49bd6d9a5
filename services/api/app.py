"""The Falcon application: ``create_app(container)`` for tests and ``dart up``; routes live here, in one place."""

from __future__ import annotations

from typing import Any

import falcon

from events.checkpoints import all_checkpoints
from services.api import errors
from services.api.metrics import Metrics, RequestMetrics
from services.api.middleware import AuthMiddleware, QueryCheck
from services.api.openapi import OpenApiDocument
from services.api.routes import add_routes
from services.commands.entities import EntityService
from services.runtime.composition import Container


class HealthResource:
    """Liveness: the process answers."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class ReadyResource:
    """Readiness: the store answers, and how far each async projection lags behind the head."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        store = self.container.store
        try:
            head = store.head_position()
            with store.engine.connect() as conn:
                checkpoints = all_checkpoints(conn)
        except Exception as exc:  # the store is down: report, never raise
            resp.status = falcon.HTTP_503
            resp.media = {"ready": False, "store": f"unreachable: {type(exc).__name__}"}
            return
        lag: dict[str, Any] = {
            p.name: head - checkpoints.get(p.name, 0) for p in self.container.projections if p.mode == "async"
        }
        resp.media = {"ready": True, "store": "ok", "head_position": head, "projection_lag": lag}


def create_app(container: Container) -> falcon.App:
    counters = RequestMetrics()
    app = falcon.App(middleware=[counters, AuthMiddleware(container.store), QueryCheck()])
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    app.add_route("/health", HealthResource())
    app.add_route("/ready", ReadyResource(container))
    app.add_route("/metrics", Metrics(container.store, container.projections, counters))
    add_routes(app, EntityService(container.store, container))

    document = OpenApiDocument()
    app.add_route("/api/1/openapi.json", document)
    app.add_route("/api/1/swagger.json", document)
    return app
