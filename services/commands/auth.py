"""API keys: creating, listing and revoking them, checking a request's credentials, and the first-start admin key.

Keys are event streams (``api_key-<key>``) holding a salted HMAC-SHA256 of the secret. A secret is 32
random bytes, not a password, so one keyed hash is as strong as a slow KDF here and costs microseconds per
request instead of tens of milliseconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cachetools import TTLCache

from events.store import EventStore
from events.streams.api_key import ApiKeyCreated, ApiKeyRevoked, ApiKeyUpdated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from projections.entities import entity_table
from projections.reads import Page
from services.commands.retry import retry_on_conflict
from services.domain import roles
from services.domain.errors import BadRequest, NotAuthenticated, NotFound
from services.domain.ids import random_id

_KEYS = entity_table(sa.MetaData(), "api_key")
_BOOTSTRAP_NS = uuid.UUID("6f1c9a52-5a3e-4e0b-9d55-0c2b9b1c7a10")
_NO_SALT = "00" * 16  # an unknown key's secret is hashed anyway, so both failures take the same time


class InvalidCredentials(NotAuthenticated):
    """An unknown key or a wrong secret: one message for both, so an answer never tells a key exists."""

    def __init__(self) -> None:
        super().__init__("invalid API key or secret")


@dataclass(frozen=True)
class Principal:
    key: str
    user_id: str
    scope: str  # a role (viewer, operator, editor, admin), "user" (an editor), or "action:<id>" (launch token)
    # The key's salt: keys a request's Idempotency-Key digest (services/commands/entities.py), so a digest of
    # a body holding a secret says nothing to readers of the log, who never see the salt.
    salt: str = field(default="", repr=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    @property
    def role(self) -> str | None:
        return roles.role_of_scope(self.scope)


def _hash(secret: str, salt: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def create_api_key(
    store: EventStore,
    user_id: str,
    scope: str = roles.LEGACY_USER,
    *,
    key: str | None = None,
    secret: str | None = None,
    actor: str = "system",
    expires: str | None = None,
) -> tuple[str, str]:
    """Create a key and return (key, secret); the secret is not recoverable afterwards."""
    append, key, secret = new_api_key(user_id, scope, key=key, secret=secret, actor=actor, expires=expires)
    store.append(append)
    return key, secret


def new_api_key(user_id: str, scope: str = roles.LEGACY_USER, *, key: str | None = None, secret: str | None = None,
                actor: str = "system", expires: str | None = None) -> tuple[StreamAppend, str, str]:
    """A new key as (the append that creates it, key, secret), for a caller that creates it together with
    other events (the launcher mints an engine's token in the append that takes the action's slot)."""
    key = key or random_id(20)
    secret = secret or secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    data = {"user_id": user_id, "scope": scope, "salt": salt, "secret_hash": _hash(secret, salt), "name": key}
    if expires is not None:
        data["expires"] = expires
    return StreamAppend(f"api_key-{key}", ExpectedVersion.NO_STREAM, [
        NewEvent(ApiKeyCreated(data), Metadata(actor=actor)),
    ]), key, secret


def issue_key(store: EventStore, user_id: Any, role: Any, expires: Any, actor: str,
              now: datetime | None = None) -> dict[str, Any]:
    """``POST /api_key`` and ``dart keys create``: a new key for ``user_id`` with ``role``; the answer holds
    the secret, which is never shown again."""
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 200 or "\x00" in user_id:
        raise BadRequest("user_id: required, a non-empty string of at most 200 characters")
    try:
        role = roles.parse_role(role)
        expires = roles.parse_expires(expires, now or datetime.now(UTC))
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    append, key, secret = new_api_key(user_id, role, actor=actor, expires=expires)
    recorded = store.append(append)
    return {"key": key, "secret": secret, **key_view(key, recorded[0].data["data"], recorded[0].recorded_at)}


def key_view(key: str, data: dict[str, Any], created: datetime | None) -> dict[str, Any]:
    """A key as it may be served: never its salt or hash."""
    scope = str(data.get("scope", roles.LEGACY_USER))
    view: dict[str, Any] = {"key": key, "user_id": data.get("user_id"), "role": roles.role_of_scope(scope),
                            "expires": data.get("expires"), "created": created.isoformat() if created else None}
    if scope.startswith("action:"):
        view["action_id"] = scope.split(":", 1)[1]
    return view


def list_keys(store: EventStore, limit: int, offset: int) -> Page:
    """``GET /api_key`` and ``dart keys list``: the live keys (revoked ones are gone), oldest first."""
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(_KEYS)).scalar_one()
        rows = conn.execute(sa.select(_KEYS.c.id, _KEYS.c.created, _KEYS.c.data)
                            .order_by(_KEYS.c.created, _KEYS.c.id).limit(limit).offset(offset)).all()
    return Page([key_view(r.id, r.data, r.created) for r in rows], limit, offset, total)


def get_key(store: EventStore, key: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(_KEYS.c.created, _KEYS.c.data).where(_KEYS.c.id == key)).first()
    if row is None:
        raise NotFound("api_key", key)
    return key_view(key, row.data, row.created)


def revoke_key(store: EventStore, key: str, actor: str, now: datetime | None = None) -> None:
    """``DELETE /api_key/{key}`` and ``dart keys revoke``: the key stops working at once in this process's
    reads (within an Authenticator's cache time elsewhere). A key already revoked is a 404, like any other
    deleted entity. The last live admin key is kept, so the API never locks its admins out."""

    def attempt() -> None:
        found = _lookup(store, key)
        if found is None:
            raise NotFound("api_key", key)
        version, data = found
        if data.get("scope") == roles.ADMIN and not _other_admin(store, key, now or datetime.now(UTC)):
            raise BadRequest(f"key: {key} is the last admin key; create another admin key before revoking it")
        store.append(StreamAppend(f"api_key-{key}", version, [NewEvent(ApiKeyRevoked(), Metadata(actor=actor))]))

    retry_on_conflict(attempt, what=f"api_key {key}")


def _other_admin(store: EventStore, key: str, now: datetime) -> bool:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(_KEYS.c.id, _KEYS.c.data).where(_KEYS.c.id != key)).all()
    return any(r.data.get("scope") == roles.ADMIN and not roles.expired(r.data.get("expires"), now) for r in rows)


def ensure_api_key(store: EventStore, key: str, secret: str, user_id: str, scope: str = "admin") -> None:
    """Make ``key:secret`` valid (DART_BOOTSTRAP_API_KEY): create it, or reset its secret if it changed."""
    found = _lookup(store, key)
    if found is None:
        salt = secrets.token_hex(16)
        data = {"user_id": user_id, "scope": scope, "salt": salt, "secret_hash": _hash(secret, salt), "name": key}
        store.append(StreamAppend(f"api_key-{key}", ExpectedVersion.NO_STREAM, [
            NewEvent(ApiKeyCreated(data), Metadata(actor="bootstrap"), uuid.uuid5(_BOOTSTRAP_NS, key)),
        ]))
        return
    version, data = found
    if not hmac.compare_digest(_hash(secret, data["salt"]), data["secret_hash"]) or data.get("scope") != scope:
        salt = secrets.token_hex(16)
        store.append(StreamAppend(f"api_key-{key}", version, [NewEvent(
            ApiKeyUpdated({"salt": salt, "secret_hash": _hash(secret, salt), "scope": scope}),
            Metadata(actor="bootstrap"),
        )]))


def _lookup(store: EventStore, key: str) -> tuple[int, dict] | None:
    with store.read_engine.connect() as conn:
        row = conn.execute(sa.select(_KEYS.c.version, _KEYS.c.data).where(_KEYS.c.id == key)).first()
    return None if row is None else (row.version, row.data)


def has_admin_key(store: EventStore) -> bool:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(_KEYS.c.data)).scalars().all()
    return any(d.get("scope") == "admin" for d in rows)


def parse_credentials(header: str | None) -> tuple[str, str]:
    """``Basic base64(key:secret)`` (the original's scheme) or ``Bearer key:secret``."""
    if not header:
        raise NotAuthenticated("missing Authorization header")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise NotAuthenticated("malformed Basic credentials") from exc
    elif scheme.lower() != "bearer":
        raise NotAuthenticated(f"unsupported Authorization scheme {scheme!r}: use Basic or Bearer")
    key, sep, secret = value.partition(":")
    if not sep or not key or not secret:
        raise NotAuthenticated("credentials must be key:secret")
    return key, secret


VERIFIED_SECONDS = 2.0  # a revoked key may still pass for this long in a process that just verified it


def verified_keys(seconds: float = VERIFIED_SECONDS, maxsize: int = 10_000) -> TTLCache[tuple[str, str], Principal]:
    """The cache an Authenticator remembers verified credentials in: ``seconds`` each, at most ``maxsize``."""
    return TTLCache(maxsize=maxsize, ttl=seconds)


class Authenticator:
    """A request's credentials checked against the store, a verified pair remembered for the cache's lifetime
    so a burst of requests with one key costs one lookup (failures are never remembered)."""

    def __init__(self, store: EventStore, verified: TTLCache[tuple[str, str], Principal]) -> None:
        self.store = store
        self.verified = verified
        # The API's threads share the cache and a cachetools cache is not thread-safe; the lookup itself runs
        # outside the lock, so two threads may both verify one new key (harmless: same answer).
        self._lock = threading.Lock()

    def forget(self, key: str) -> None:
        """Drop a revoked key's verified credentials, so this process refuses it at once (others within
        the cache's lifetime)."""
        with self._lock:
            for cached in [c for c in self.verified if c[0] == key]:
                self.verified.pop(cached, None)

    def __call__(self, header: str | None) -> Principal:
        key, secret = parse_credentials(header)
        cache_key = (key, hashlib.sha256(secret.encode()).hexdigest())
        with self._lock:
            hit = self.verified.get(cache_key)
        if hit is not None:
            return hit
        principal = _authenticate(self.store, key, secret)
        with self._lock:
            self.verified[cache_key] = principal
        return principal


def authenticate(store: EventStore, header: str | None) -> Principal:
    """Check credentials with no cache: every call reads the store (the CLI, tests)."""
    key, secret = parse_credentials(header)
    return _authenticate(store, key, secret)


def _authenticate(store: EventStore, key: str, secret: str) -> Principal:
    found = _lookup(store, key)
    if found is None:
        hmac.compare_digest(_hash(secret, _NO_SALT), _NO_SALT)
        raise InvalidCredentials()
    _, data = found
    if not hmac.compare_digest(_hash(secret, data["salt"]), data["secret_hash"]):
        raise InvalidCredentials()
    if roles.expired(data.get("expires"), datetime.now(UTC)):
        raise NotAuthenticated(f"API key {key} expired at {data['expires']}")  # the secret was right
    return Principal(key=key, user_id=data["user_id"], scope=data.get("scope", roles.LEGACY_USER),
                     salt=data["salt"])


def first_start_admin_key(store: EventStore, home: Path, bootstrap: str) -> str | None:
    """On start: honour DART_BOOTSTRAP_API_KEY, or create the first admin key and save it (mode 0600).

    Returns a message to print once, or None when nothing new was created.
    """
    if bootstrap:
        key, sep, secret = bootstrap.partition(":")
        if not sep or not key or not secret:
            raise ValueError("DART_BOOTSTRAP_API_KEY must be key:secret")
        ensure_api_key(store, key, secret, user_id="admin", scope="admin")
        return None
    if has_admin_key(store):
        return None
    key, secret = create_api_key(store, "admin", "admin", actor="dart up")
    path = home / "credentials"
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{key}:{secret}\n")
    os.chmod(path, 0o600)
    return (
        f"created the admin API key (shown once; also saved to {path}):\n  {key}:{secret}\n"
        f"  use it as: curl -u {key}:{secret} http://HOST:PORT/api/1/..."
    )
