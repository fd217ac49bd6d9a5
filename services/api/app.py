"""The Falcon application: ``create_app(...)`` from its collaborators, which the composition root
(services/runtime/composition.py) builds for ``dart up`` and gunicorn, and tests build for themselves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import falcon

from projections.base import Projection
from services.api import errors
from services.api.body import DEFAULT_MAX_BODY_BYTES, BodyLimit, JsonBody
from services.api.listing import SchemaCache
from services.api.metrics import RequestMetrics
from services.api.middleware import Authenticate, AuthMiddleware, QueryCheck
from services.api.request_trace import RequestTrace
from services.api.route import Collaborators, GuessDataset, LogReader
from services.api.routes import OPEN_PATHS, add_routes
from services.api.ui_assets import add_ui
from services.commands.context import Orchestration
from services.commands.engine_protocol import SecretReader
from services.commands.entities import EntityService


def create_app(
    *,
    entities: EntityService,
    authenticate: Authenticate,
    orchestration: Orchestration,
    projections: Sequence[Projection],
    secrets: SecretReader | None,
    guess_dataset: GuessDataset,
    schema_cache: SchemaCache,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    logs: LogReader | None = None,
) -> falcon.App:
    """The REST API over ``entities.store``: every route of services/api/routes.py, errors mapped once."""
    counters = RequestMetrics()
    parts = Collaborators(entities, orchestration, projections, secrets, guess_dataset, schema_cache, counters, logs)
    middleware: list[Any] = [RequestTrace(), counters, BodyLimit(max_body_bytes),
                             AuthMiddleware(authenticate, entities.reader, OPEN_PATHS), QueryCheck()]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    # JSON only (another type is a 415), parsed by the handler that refuses NaN, deep nesting and surrogates
    app.req_options.media_handlers = falcon.media.Handlers({falcon.MEDIA_JSON: JsonBody()})
    errors.install(app)
    add_routes(app, parts)
    add_ui(app)  # the web UI at / and every deep link outside /api/ (services/ui)
    return app
