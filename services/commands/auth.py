"""API keys: creating them, checking a request's credentials, and the first-start admin key.

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
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cachetools import TTLCache

from events.store import EventStore
from events.streams.api_key import ApiKeyCreated, ApiKeyUpdated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from projections.entities import entity_table
from services.domain.errors import NotAuthenticated
from services.domain.ids import random_id

_KEYS = entity_table(sa.MetaData(), "api_key")
_BOOTSTRAP_NS = uuid.UUID("6f1c9a52-5a3e-4e0b-9d55-0c2b9b1c7a10")


@dataclass(frozen=True)
class Principal:
    key: str
    user_id: str
    scope: str  # "admin", "user", or "action:<id>" for an engine's launch token

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


def _hash(secret: str, salt: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def create_api_key(
    store: EventStore,
    user_id: str,
    scope: str = "user",
    *,
    key: str | None = None,
    secret: str | None = None,
    actor: str = "system",
) -> tuple[str, str]:
    """Create a key and return (key, secret); the secret is not recoverable afterwards."""
    append, key, secret = new_api_key(user_id, scope, key=key, secret=secret, actor=actor)
    store.append(append)
    return key, secret


def new_api_key(user_id: str, scope: str = "user", *, key: str | None = None, secret: str | None = None,
                actor: str = "system") -> tuple[StreamAppend, str, str]:
    """A new key as (the append that creates it, key, secret), for a caller that creates it together with
    other events (the launcher mints an engine's token in the append that takes the action's slot)."""
    key = key or random_id(20)
    secret = secret or secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    data = {"user_id": user_id, "scope": scope, "salt": salt, "secret_hash": _hash(secret, salt), "name": key}
    return StreamAppend(f"api_key-{key}", ExpectedVersion.NO_STREAM, [
        NewEvent(ApiKeyCreated(data), Metadata(actor=actor)),
    ]), key, secret


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
    with store.engine.connect() as conn:
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
        raise NotAuthenticated("unknown API key")
    _, data = found
    if not hmac.compare_digest(_hash(secret, data["salt"]), data["secret_hash"]):
        raise NotAuthenticated("wrong secret for API key")
    return Principal(key=key, user_id=data["user_id"], scope=data.get("scope", "user"))


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
