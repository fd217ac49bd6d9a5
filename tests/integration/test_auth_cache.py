"""The API's cache of verified keys (services/commands/auth.py ``Authenticator``), on a real SQLite store: a
verified key is remembered for the cache's lifetime and no longer, failures are never remembered, and the
threads of one app share it safely."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cachetools import TTLCache

from events.database import open_store
from events.store import EventStore
from events.streams import default_registry
from events.streams.api_key import ApiKeyRevoked
from events.types import ExpectedVersion, NewEvent, StreamAppend
from projections.catalog import all_projections
from services.commands.auth import (
    VERIFIED_SECONDS,
    Authenticator,
    Principal,
    authenticate,
    create_api_key,
    verified_keys,
)
from services.domain.errors import NotAuthenticated


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'dart.db'}", default_registry())
    for projection in all_projections():
        if projection.mode == "inline":  # the api_key table the check reads
            opened.add_inline_projection(projection)
    yield opened
    opened.close()


def _revoke(store: EventStore, key: str) -> None:
    store.append(StreamAppend(f"api_key-{key}", ExpectedVersion.ANY, [NewEvent(ApiKeyRevoked())]))


def test_a_verified_key_is_remembered_for_the_cache_lifetime_and_no_longer(store: EventStore) -> None:
    key, secret = create_api_key(store, "ann@example.com")
    clock = Clock()
    check = Authenticator(store, TTLCache(maxsize=100, ttl=VERIFIED_SECONDS, timer=clock))
    assert check(f"Bearer {key}:{secret}") == Principal(key, "ann@example.com", "user")
    _revoke(store, key)
    with pytest.raises(NotAuthenticated, match="invalid API key or secret"):
        authenticate(store, f"Bearer {key}:{secret}")  # uncached: the store says no at once
    clock.now += VERIFIED_SECONDS - 0.1
    assert check(f"Bearer {key}:{secret}").user_id == "ann@example.com"  # still remembered
    clock.now += 0.2
    with pytest.raises(NotAuthenticated, match="invalid API key or secret"):
        check(f"Bearer {key}:{secret}")


def test_a_failed_check_is_not_remembered(store: EventStore) -> None:
    key, secret = create_api_key(store, "bob@example.com")
    check = Authenticator(store, verified_keys())
    with pytest.raises(NotAuthenticated, match="invalid API key or secret"):
        check(f"Bearer {key}:not-{secret}")
    assert len(check.verified) == 0
    assert check(f"Bearer {key}:{secret}").user_id == "bob@example.com"
    assert len(check.verified) == 1


def test_the_default_cache_keeps_keys_two_seconds_and_is_per_authenticator(store: EventStore) -> None:
    key, secret = create_api_key(store, "cy@example.com")
    first, second = Authenticator(store, verified_keys()), Authenticator(store, verified_keys())
    assert first.verified.ttl == 2.0
    first(f"Bearer {key}:{secret}")
    assert len(first.verified) == 1 and len(second.verified) == 0


def test_the_threads_of_one_app_share_the_cache(store: EventStore) -> None:
    keys = [create_api_key(store, f"u{n}@example.com") for n in range(8)]
    check = Authenticator(store, verified_keys())
    with ThreadPoolExecutor(8) as pool:
        users = list(pool.map(lambda n: check(f"Bearer {keys[n % 8][0]}:{keys[n % 8][1]}").user_id, range(400)))
    assert users == [f"u{n % 8}@example.com" for n in range(400)]
    assert len(check.verified) == 8
