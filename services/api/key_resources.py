"""API keys over REST (admin only, by the route table): create one (its secret answered once), list them,
read one (``as_of``) and its history, revoke one. No answer ever holds a key's salt or secret hash."""

from __future__ import annotations

import falcon

from events.store import EventStore
from projections.reads import EntityReader
from services.api.listing import int_param
from services.api.resources import body, who
from services.commands.auth import get_key, issue_key, key_view, list_keys, revoke_key
from services.commands.entities import check_envelope
from services.domain.errors import BadRequest
from services.domain.roles import redact_key_event

KEY_FIELDS = frozenset({"user_id", "role", "expires"})


class ApiKeyCollection:
    """``GET /api_key`` (paged) and ``POST /api_key`` with ``{"data": {"user_id", "role", "expires"}}``."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit, offset = int_param(req, "limit", 20, 0, 10000), int_param(req, "offset", 0)
        resp.media = list_keys(self.store, limit, offset).as_dict()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = check_envelope(body(req))
        unknown = sorted(set(data) - KEY_FIELDS)
        if unknown:
            raise BadRequest(f"data: unknown field(s): {', '.join(unknown)}")
        resp.media = {"results": issue_key(self.store, data.get("user_id"), data.get("role"), data.get("expires"),
                                           actor=who(req).user_id)}


class ApiKeyItem:
    """``GET /api_key/{key}`` (``as_of``: the key as it was then) and ``DELETE /api_key/{key}`` (revoke)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.reader = EntityReader(store)

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        as_of = req.get_param("as_of")
        if as_of:
            then = self.reader.as_of("api_key", entity_id, as_of)
            resp.media = {"results": key_view(entity_id, then["data"], None) | {"created": then["created"]}}
            return
        resp.media = {"results": get_key(self.store, entity_id)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        revoke_key(self.store, entity_id, actor=who(req).user_id)
        req.context.revoked_key = entity_id  # the middleware drops it from this process's cache of keys
        resp.media = {"results": "OK"}


class ApiKeyHistory:
    """``GET /api_key/{key}/history``: the key's events, paged, without salt or hash."""

    def __init__(self, store: EventStore) -> None:
        self.reader = EntityReader(store)

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        page = self.reader.history("api_key", entity_id, int_param(req, "limit", 100, 0, 10000),
                                   int_param(req, "offset", 0))
        page.results = [redact_key_event(e) for e in page.results]
        resp.media = page.as_dict()
