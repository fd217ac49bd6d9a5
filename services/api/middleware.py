"""Authentication on every route but the open ones (health, readiness, metrics, the OpenAPI document)."""

from __future__ import annotations

from typing import Any

import falcon

from events.store import EventStore
from services.auth import authenticate

OPEN_PATHS = {"/health", "/ready", "/metrics", "/api/1/openapi.json", "/api/1/swagger.json"}


class AuthMiddleware:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        if req.path in OPEN_PATHS or resource is None:
            req.context.principal = None
            return
        req.context.principal = authenticate(self.store, req.get_header("Authorization"))
