"""API keys over REST (issue 11): create (the secret answered once), list, read, history, revoke, expiry;
no answer ever holds a key's salt or secret hash; one 401 for an unknown key and a wrong secret; failed
authentications from one address slowed down to a 429."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.streams.api_key import ApiKeyUpdated
from events.types import NewEvent, StreamAppend
from services.api.app import create_app
from services.api.listing import SchemaCache
from services.commands.auth import Authenticator, create_api_key, verified_keys
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from tests.api.conftest import Api, InProcessDart, basic, start


def _stored_key_data(dart: InProcessDart) -> list[dict[str, Any]]:
    """Every salt and hash in the log, straight from the store."""
    return [e.data.get("data") or e.data.get("changes") or {} for e in dart.store.read_all(0, 100_000)
            if e.type in ("ApiKeyCreated", "ApiKeyUpdated")]


def _secrets_of_keys(dart: InProcessDart) -> set[str]:
    found = {d[f] for d in _stored_key_data(dart) for f in ("salt", "secret_hash") if f in d}
    assert found  # there are keys, so the checks below could fail
    return found


def test_an_admin_creates_a_key_with_a_role_and_it_works_with_that_role(api: Api) -> None:
    created = api.post("/api_key", {"data": {"user_id": "vic@example.com", "role": "viewer"}})
    assert set(created) == {"key", "secret", "user_id", "role", "expires", "created"}
    assert created["user_id"] == "vic@example.com" and created["role"] == "viewer" and created["expires"] is None
    viewer = api.as_key(created["key"], created["secret"])
    assert viewer.request("GET", "/datastore")[0] == 200
    status, body = viewer.request("POST", "/datastore", {"data": {}})
    assert status == 403 and "needs role editor" in body["error_message"]
    listed = api.get(f"/api_key/{created['key']}")
    assert listed == {k: v for k, v in created.items() if k != "secret"}  # the secret is never shown again


@pytest.mark.parametrize("data,field", [
    ({"role": "viewer"}, "user_id"),
    ({"user_id": "", "role": "viewer"}, "user_id"),
    ({"user_id": "a@example.com", "role": "root"}, "role"),
    ({"user_id": "a@example.com"}, "role"),
    ({"user_id": "a@example.com", "role": "viewer", "expires": "2000-01-01T00:00:00+00:00"}, "expires"),
    ({"user_id": "a@example.com", "role": "viewer", "expires": "tomorrow"}, "expires"),
    ({"user_id": "a@example.com", "role": "viewer", "expires": "2999-01-01T00:00:00"}, "expires"),
    ({"user_id": "a@example.com", "role": "viewer", "expires": 5}, "expires"),
    ({"user_id": "a@example.com", "role": "viewer", "scope": "admin"}, "scope"),
])
def test_a_bad_key_request_is_a_400_naming_the_field(api: Api, data: dict[str, Any], field: str) -> None:
    before = len(api.get("/api_key", params={"limit": 10000}))
    status, body = api.request("POST", "/api_key", {"data": data})
    assert status == 400 and field in body["error_message"], body
    assert len(api.get("/api_key", params={"limit": 10000})) == before


def test_the_list_is_paged_and_holds_no_secret_salt_or_hash(dart: InProcessDart, api: Api) -> None:
    made = [api.post("/api_key", {"data": {"user_id": f"p{n}@example.com", "role": "operator"}}) for n in range(3)]
    status, page = api.request("GET", "/api_key", params={"limit": 2, "offset": 1})
    assert status == 200 and len(page["results"]) == 2 and page["limit"] == 2 and page["offset"] == 1
    everything = api.get("/api_key", params={"limit": 10000})
    assert page["total"] == len(everything) >= 4
    assert {m["key"] for m in made} <= {k["key"] for k in everything}
    text = json.dumps(everything)
    assert not any(value in text for value in _secrets_of_keys(dart))
    assert not any(m["secret"] in text for m in made)
    assert "salt" not in text and "secret_hash" not in text


def test_log_history_and_as_of_serve_key_events_without_salt_or_hash(dart: InProcessDart, api: Api) -> None:
    created = api.post("/api_key", {"data": {"user_id": "h@example.com", "role": "editor"}})
    key = created["key"]
    # A secret reset (what DART_BOOTSTRAP_API_KEY does when it changes) puts a new salt and hash in the log too.
    dart.store.append(StreamAppend(f"api_key-{key}", 1, [NewEvent(ApiKeyUpdated(
        {"salt": "ab" * 16, "secret_hash": "cd" * 32, "scope": "editor"}))]))
    log = api.get("/log", params={"limit": 10000})
    history = api.get(f"/api_key/{key}/history")
    as_of = api.get(f"/api_key/{key}", params={"as_of": str(dart.store.head_position())})
    by_type = api.get("/log", params={"type": "ApiKeyCreated,ApiKeyUpdated", "limit": 10000})
    assert [e["type"] for e in history] == ["ApiKeyCreated", "ApiKeyUpdated"]
    assert history[0]["data"]["data"]["user_id"] == "h@example.com"  # the rest of the event is served
    assert as_of["role"] == "editor" and as_of["key"] == key
    hidden = _secrets_of_keys(dart)
    for answer in (log, history, as_of, by_type):
        text = json.dumps(answer)
        assert not any(value in text for value in hidden)
        assert "salt" not in text and "secret_hash" not in text


def test_a_revoked_key_is_refused_at_once_and_a_second_revoke_is_a_404(api: Api) -> None:
    created = api.post("/api_key", {"data": {"user_id": "r@example.com", "role": "admin"}})
    mine = api.as_key(created["key"], created["secret"])
    assert mine.request("GET", "/api_key")[0] == 200
    assert api.delete(f"/api_key/{created['key']}") == "OK"
    assert mine.request("GET", "/datastore")[0] == 401
    assert api.request("DELETE", f"/api_key/{created['key']}")[0] == 404  # gone, like any deleted entity
    assert created["key"] not in {k["key"] for k in api.get("/api_key", params={"limit": 10000})}
    assert [e["type"] for e in api.get(f"/api_key/{created['key']}/history")][-1] == "ApiKeyRevoked"


def test_the_last_admin_key_cannot_be_revoked(tmp_path: Any) -> None:
    dart = start(tmp_path)
    try:
        status, body = dart.api.request("DELETE", f"/api_key/{dart.key}")
        assert status == 400 and "last admin key" in body["error_message"]
        other = dart.api.post("/api_key", {"data": {"user_id": "second@example.com", "role": "admin"}})
        assert dart.api.delete(f"/api_key/{dart.key}") == "OK"
        assert dart.api.as_key(other["key"], other["secret"]).request("GET", "/log")[0] == 200
    finally:
        dart.store.close()


def test_an_expired_key_is_refused_with_a_401(dart: InProcessDart, api: Api) -> None:
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = api.post("/api_key", {"data": {"user_id": "x@example.com", "role": "viewer", "expires": soon}})
    assert created["expires"] == soon
    assert api.as_key(created["key"], created["secret"]).request("GET", "/datastore")[0] == 200
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()  # as if that day had passed
    key, secret = create_api_key(dart.store, "x@example.com", "viewer", expires=past)
    status, body = api.as_key(key, secret).request("GET", "/datastore")
    assert status == 401 and "expired" in body["error_message"]


def test_an_unknown_key_and_a_wrong_secret_get_the_same_401(dart: InProcessDart, api: Api) -> None:
    answers = []
    for authorization in (basic(dart.key, "wrong"), basic("NOSUCHKEY", "wrong"), f"Bearer {dart.key}:wrong",
                          "Bearer NOSUCHKEY:wrong"):
        result = dart.api.client.simulate_get("/api/1/engine", headers={"Authorization": authorization},
                                              remote_addr="10.9.9.1")
        answers.append((result.status_code, result.json, result.headers.get("WWW-Authenticate")))
    assert answers[0][0] == 401
    assert all(answer == answers[0] for answer in answers)


def test_repeated_failures_with_one_key_from_one_address_are_a_429_until_the_bucket_refills(
        dart: InProcessDart) -> None:
    client, good = dart.api.client, {"Authorization": basic(dart.key, dart.secret)}
    bad = {"Authorization": basic(dart.key, "guess")}
    statuses = [client.simulate_get("/api/1/engine", headers=bad, remote_addr="10.7.7.7").status_code
                for _ in range(100)]
    assert statuses == [401] * 100
    refused = client.simulate_get("/api/1/engine", headers=good, remote_addr="10.7.7.7")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1  # unchecked, even a right key
    assert "10.7.7.7" in refused.json["error_message"]
    assert client.simulate_get("/api/1/engine", headers=good, remote_addr="10.7.7.8").status_code == 200
    other = {"Authorization": basic(*create_api_key(dart.store, "o@example.com", "viewer"))}
    assert client.simulate_get("/api/1/engine", headers=other, remote_addr="10.7.7.7").status_code == 200
    assert client.simulate_get("/health", remote_addr="10.7.7.7").status_code == 200  # open routes stay open


def test_an_unknown_key_is_throttled_like_a_known_one(dart: InProcessDart) -> None:
    """Otherwise the 101st answer would tell whether a key exists."""
    client, bad = dart.api.client, {"Authorization": basic("NOSUCHKEY", "guess")}
    statuses = [client.simulate_get("/api/1/engine", headers=bad, remote_addr="10.6.6.6").status_code
                for _ in range(101)]
    assert statuses == [401] * 100 + [429]


def test_a_launch_token_is_listed_with_its_action(dart: InProcessDart, api: Api) -> None:
    key, _ = create_api_key(dart.store, "engine@no_op_engine", "action:ACTIONID01")
    [token] = [k for k in api.get("/api_key", params={"limit": 10000}) if k["key"] == key]
    assert token["role"] == "engine" and token["action_id"] == "ACTIONID01"


def test_a_key_revoked_over_rest_is_refused_at_once_by_the_app_that_revoked_it(dart: InProcessDart) -> None:
    """The production app remembers verified keys for 2 s (Authenticator); a revocation clears its entry."""
    store = dart.store
    app = create_app(entities=EntityService(store, dart.container), authenticate=Authenticator(store, verified_keys(60)),
                     orchestration=Orchestration(store, dart.container.settings.s3_datastores_root),
                     projections=dart.container.projections, secrets=dart.container.secrets,
                     guess_dataset=dart.guess, schema_cache=SchemaCache())
    admin = Api(dart.api.client.__class__(app), basic(dart.key, dart.secret))
    created = admin.post("/api_key", {"data": {"user_id": "c@example.com", "role": "viewer"}})
    mine = admin.as_key(created["key"], created["secret"])
    assert mine.request("GET", "/datastore")[0] == 200  # now verified and cached for 60 s
    assert admin.delete(f"/api_key/{created['key']}") == "OK"
    assert mine.request("GET", "/datastore")[0] == 401
