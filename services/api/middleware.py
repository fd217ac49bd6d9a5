"""Authentication on every route but the open ones, each method held to its role (the route table's access
column, services/api/routes.py; the rules in services/domain/roles.py), an engine's launch token held to its
own action, failed authentications slowed down per client address, the request's ``X-Dart-Source`` made the
source of the events it appends, and the query-parameter check."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import falcon
from cachetools import TTLCache

from events.types import REQUEST_SOURCE
from projections.reads import EntityReader
from services.commands.auth import InvalidCredentials, Principal, parse_credentials
from services.commands.tokens import refuse_ended_token
from services.domain.errors import BadRequest, Forbidden, NotAuthenticated
from services.domain.roles import ENGINE, OPEN, Access

log = logging.getLogger("dart.api")
ELEMENTS_PATH = "/api/1/action/{entity_id}/subscription/elements"
MAX_SOURCE_CHARS = 500

# The Authorization header (or None) -> who is asking; raises NotAuthenticated (services/commands/auth.py)
Authenticate = Callable[[str | None], Principal]


class FailureThrottle:
    """Failed authentications (an unknown key or a wrong secret) per client, as token buckets: ``burst``
    failures at once, then one more every ``1 / per_second`` seconds. The middleware keys a bucket by the
    client's address and the key it names, so guessing one key's secret is slowed while that address's other
    keys, and other addresses (engines, a proxy's other clients), keep working; known and unknown keys are
    throttled alike, so a 429 never tells a key exists. The burst of 100 lets schemathesis's ignored_auth
    check (one probe an operation, all with one invalid Basic key) run whole; guessing stays at one a second."""

    def __init__(self, burst: int = 100, per_second: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 maxsize: int = 10_000) -> None:
        self.burst = burst
        self.per_second = per_second
        self.clock = clock
        # An address untouched for burst / per_second seconds has a full bucket again: forgetting it is exact.
        self._buckets: TTLCache[str, tuple[float, float]] = TTLCache(maxsize, burst / per_second, timer=clock)
        self._lock = threading.Lock()  # the API's threads share the buckets; cachetools is not thread-safe

    def _level(self, address: str, now: float) -> float:
        found = self._buckets.get(address)
        if found is None:
            return float(self.burst)
        tokens, at = found
        return min(float(self.burst), tokens + (now - at) * self.per_second)

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        with self._lock:
            level = self._level(address, self.clock())
        return None if level >= 1 else max(1, math.ceil((1 - level) / self.per_second))

    def failed(self, address: str) -> None:
        with self._lock:
            now = self.clock()
            self._buckets[address] = (max(0.0, self._level(address, now) - 1), now)


class AuthMiddleware:
    def __init__(self, authenticate: Authenticate, reader: EntityReader, open_paths: Collection[str],
                 throttle: FailureThrottle | None = None) -> None:
        self.authenticate = authenticate
        self.reader = reader
        self.open_paths = open_paths
        self.throttle = throttle or FailureThrottle()

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        req.context.principal = None
        req.context.source_token = REQUEST_SOURCE.set(_source(req))  # reset in process_response
        if req.path in self.open_paths or resource is None:
            return
        rules: dict[str, Access] = getattr(resource, "access", {})
        rule = rules.get(req.method)
        if rule is not None and rule.role == OPEN:
            return
        principal = self._authenticated(req)
        req.context.principal = principal
        if rule is None:
            if hasattr(resource, f"on_{req.method.lower()}"):  # a responder with no row: closed, not open
                raise Forbidden(f"{req.method} {req.uri_template} has no role in the route table")
            return  # no responder: falcon answers 405 with the Allow header
        if not rule.admits(principal.role):
            raise Forbidden(f"{req.method} {req.uri_template} needs role {rule.describe()}; "
                            f"this key's role is {principal.role or 'none'}")
        if principal.role == ENGINE:
            self._check_action_token(req, principal, params or {})

    def _authenticated(self, req: falcon.Request) -> Principal:
        """The caller, unless its address has failed too often with the key it names: then a 429 with
        Retry-After, its credentials unchecked (``remote_addr``: the peer, not a spoofable X-Forwarded-For)."""
        header = req.get_header("Authorization")
        try:
            key = parse_credentials(header)[0]
        except NotAuthenticated:
            key = ""  # a missing or malformed header tests no secret; authenticate names the problem below
        address = req.remote_addr or ""
        bucket = f"{address} {key}"
        wait = self.throttle.retry_after(bucket)
        if wait is not None:
            raise falcon.HTTPTooManyRequests(
                description=f"too many failed authentications with this key from {address}; retry after "
                            f"{wait} s", retry_after=wait)
        try:
            return self.authenticate(header)
        except InvalidCredentials:
            self.throttle.failed(bucket)
            raise

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        """Every refusal logged with the key and the route, whichever layer refused (the gate above, the
        launch-token check, an operator's change of more than a state); a key a resource revoked
        (``req.context.revoked_key``) forgotten by the authenticator's cache at once."""
        token = getattr(req.context, "source_token", None)
        if token is not None:
            REQUEST_SOURCE.reset(token)
            req.context.source_token = None
        revoked = getattr(req.context, "revoked_key", None)
        forget = getattr(self.authenticate, "forget", None)
        if revoked and req_succeeded and forget is not None:
            forget(revoked)
        if str(resp.status).startswith("403"):
            principal = getattr(req.context, "principal", None)
            message = resp.media.get("error_message") if isinstance(resp.media, dict) else None
            log.warning("403 for key %s on %s %s: %s", principal.key if principal else None, req.method,
                        req.uri_template or req.path, message)

    def _check_action_token(self, req: falcon.Request, principal: Principal, params: dict[str, Any]) -> None:
        """An engine's launch token works only while its action is PENDING or RUNNING (read from the inline
        read model on every request, so a check-in, failure, lost engine or deletion ends it at once in every
        process, whatever the verified-keys cache holds). It reads anything but its action's subscription
        elements are its own only, and it changes only its own action (check-out, check-in, progress) and
        that action's datastore."""
        action = refuse_ended_token(self.reader, principal)
        action_id = principal.scope.split(":", 1)[1]
        path = req.path
        target = params.get("entity_id")
        if req.method == "GET":
            if req.uri_template == ELEMENTS_PATH and target != action_id:
                raise Forbidden(f"this key belongs to action {action_id}'s engine and may not read the "
                                f"subscription elements of action {target}")
            return
        if req.method == "PUT" and path.startswith("/api/1/engine/action/") and target == action_id:
            return
        if req.method == "PATCH" and path == f"/api/1/action/{action_id}":
            return
        if (req.method == "PATCH" and path.startswith("/api/1/datastore/") and target and action is not None
                and action.get("datastore_id") == target):
            return
        raise Forbidden(f"this key belongs to action {action_id}'s engine and may not {req.method} {path}")


def _source(req: falcon.Request) -> str | None:
    """``X-Dart-Source``: where a change comes from (``dart apply`` names its file and commit); every event
    the request appends records it in its metadata (events/types.py)."""
    source = req.get_header("X-Dart-Source")
    if source is None or source == "":
        return None
    if len(source) > MAX_SOURCE_CHARS or not source.isprintable():
        raise BadRequest(f"X-Dart-Source: at most {MAX_SOURCE_CHARS} printable characters")
    return source


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
