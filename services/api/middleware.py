"""Authentication on every route but the open ones (health, readiness, metrics, the OpenAPI document: the
route table marks them), an engine's launch token held to its own action, and the query-parameter check."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import falcon

from projections.reads import EntityReader
from services.commands.auth import Principal
from services.domain.errors import BadRequest, Forbidden

# The Authorization header (or None) -> who is asking; raises NotAuthenticated (services/commands/auth.py)
Authenticate = Callable[[str | None], Principal]


class AuthMiddleware:
    def __init__(self, authenticate: Authenticate, reader: EntityReader, open_paths: Collection[str]) -> None:
        self.authenticate = authenticate
        self.reader = reader
        self.open_paths = open_paths

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        if req.path in self.open_paths or resource is None:
            req.context.principal = None
            return
        principal = self.authenticate(req.get_header("Authorization"))
        req.context.principal = principal
        if principal.scope.startswith("action:"):
            self._check_action_token(req, principal.scope.split(":", 1)[1], params or {})

    def _check_action_token(self, req: falcon.Request, action_id: str, params: dict[str, Any]) -> None:
        """An engine's launch token reads anything, and changes only its own action (check-out, check-in,
        progress) and that action's datastore."""
        if req.method == "GET":
            return
        path = req.path
        target = params.get("entity_id")
        if req.method == "PUT" and path.startswith("/api/1/engine/action/") and target == action_id:
            return
        if req.method == "PATCH" and path == f"/api/1/action/{action_id}":
            return
        if req.method == "PATCH" and path.startswith("/api/1/datastore/") and target:
            row = self.reader.row("action", action_id)
            if row is not None and row.data.get("datastore_id") == target:
                return
        raise Forbidden(f"this key belongs to action {action_id}'s engine and may not {req.method} {path}")


class QueryCheck:
    """A query parameter a route does not know, or one given twice, is a 400 naming it; so is a NUL
    character in any parameter (PostgreSQL text cannot hold one)."""

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        for name, value in [*(params or {}).items(), *req.params.items()]:
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and "\x00" in v for v in values):
                raise BadRequest(f"{name}: must not contain a NUL character")
        known = getattr(resource, "query_params", None)
        if known is None or not hasattr(resource, f"on_{req.method.lower()}"):
            return  # no responder: falcon answers 405 with the Allow header
        allowed = known if req.method == "GET" else frozenset()
        unknown = sorted(set(req.params) - allowed)
        if unknown:
            raise BadRequest(f"query: unknown parameter(s): {', '.join(unknown)}")
        repeated = sorted(k for k, v in req.params.items() if isinstance(v, list))
        if repeated:
            raise BadRequest(f"query: parameter(s) given more than once: {', '.join(repeated)}")
