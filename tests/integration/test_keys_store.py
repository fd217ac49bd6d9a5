"""API key commands (services/commands/auth.py) on both stores: issue, list, read, expire, revoke, and the
roles a stored key carries; no listing holds a salt or hash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from events.store import EventStore
from services.commands.auth import authenticate, create_api_key, get_key, issue_key, list_keys, revoke_key
from services.domain.errors import BadRequest, NotAuthenticated, NotFound


def test_keys_are_issued_listed_and_revoked_with_their_roles(projected_store: EventStore) -> None:
    store = projected_store
    admin = issue_key(store, "ada@example.com", "admin", None, actor="test")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    viewer = issue_key(store, "vic@example.com", "viewer", soon, actor="ada@example.com")
    assert viewer["expires"] == soon and viewer["role"] == "viewer"
    assert authenticate(store, f"Bearer {viewer['key']}:{viewer['secret']}").role == "viewer"
    page = list_keys(store, 10, 0)
    assert page.total == 2 and [k["key"] for k in page.results] == [admin["key"], viewer["key"]]
    assert get_key(store, viewer["key"]) == {k: v for k, v in viewer.items() if k != "secret"}
    text = json.dumps(page.as_dict())
    assert "salt" not in text and "secret_hash" not in text and viewer["secret"] not in text
    with pytest.raises(BadRequest, match="last admin key"):
        revoke_key(store, admin["key"], actor="test")
    revoke_key(store, viewer["key"], actor="ada@example.com")
    with pytest.raises(NotAuthenticated, match="invalid API key or secret"):
        authenticate(store, f"Bearer {viewer['key']}:{viewer['secret']}")
    with pytest.raises(NotFound):
        revoke_key(store, viewer["key"], actor="ada@example.com")
    assert list_keys(store, 10, 0).total == 1


def test_an_expired_key_is_refused_and_an_old_user_key_is_an_editor(projected_store: EventStore) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    key, secret = create_api_key(projected_store, "x@example.com", "viewer", expires=past)
    with pytest.raises(NotAuthenticated, match="expired"):
        authenticate(projected_store, f"Bearer {key}:{secret}")
    key, secret = create_api_key(projected_store, "old@example.com", "user")
    assert authenticate(projected_store, f"Bearer {key}:{secret}").role == "editor"
