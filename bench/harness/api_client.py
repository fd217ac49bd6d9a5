"""A small black-box client for the REST API, speaking HTTP to a running dart like an engine or script."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body}")


class Api:
    def __init__(self, base: str, key: str | None, secret: str | None) -> None:
        self.base = base.rstrip("/")
        self.auth = (
            "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode() if key and secret else None
        )

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(
                {k: (json.dumps(v) if isinstance(v, list) else v) for k, v in params.items()}
            )
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.auth:
            req.add_header("Authorization", self.auth)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, result = self.request(method, path, body, **kw)
        if status != 200:
            raise ApiError(status, result)
        return result["results"] if isinstance(result, dict) and "results" in result else result

    def get(self, path: str, **kw: Any) -> Any:
        return self.ok("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.ok("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.ok("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> Any:
        return self.ok("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.ok("DELETE", path, **kw)
