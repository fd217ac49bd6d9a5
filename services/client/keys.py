"""API keys over REST (admin): create (the secret shown once), list, get, revoke, history."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

from services.client.entity import ApiKey, LoggedEvent
from services.client.transport import Transport, quote


class Keys:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def create(self, user_id: str, role: str = "editor", expires: str | None = None) -> ApiKey:
        """A new key; its ``secret`` (and ``token``) only in this answer."""
        data: dict[str, Any] = {"user_id": user_id, "role": role}
        if expires is not None:
            data["expires"] = expires
        return ApiKey.from_json(self.transport.request("POST", "/api_key", {"data": data})["results"])

    def list(self, *, page_size: int = 100) -> Iterator[ApiKey]:
        offset = 0
        while True:
            page = self.transport.request("GET", "/api_key", params={"limit": page_size, "offset": offset})
            results = page.get("results") or []
            yield from (ApiKey.from_json(raw) for raw in results)
            if len(results) < page_size:
                return
            offset += len(results)

    def get(self, key: str, *, as_of: int | str | None = None) -> ApiKey:
        params = {"as_of": as_of} if as_of is not None else None
        return ApiKey.from_json(self.transport.request("GET", f"/api_key/{quote(key)}", params=params)["results"])

    def revoke(self, key: str) -> None:
        self.transport.request("DELETE", f"/api_key/{quote(key)}")

    def history(self, key: str) -> builtins.list[LoggedEvent]:
        answer = self.transport.request("GET", f"/api_key/{quote(key)}/history", params={"limit": 1000})
        return [LoggedEvent.from_json(raw) for raw in answer.get("results") or []]
