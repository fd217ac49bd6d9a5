"""The REST API benchmark's "limit": a bare Falcon + psycopg app answering the benchmark's three request
shapes straight from dart's ``rm_action`` table with hand-written SQL, served by gunicorn with the same
settings ``dart api`` uses (gthread, N workers x M threads, access log on stdout, timeout 60).

    .venv/bin/python -m bench.api_bare --database-url URL --port P [--workers 2] [--threads 8]

What it does per request, and nothing else (no dart code is imported):

- auth, as dart does it: ``Authorization: Basic base64(key:secret)`` (or Bearer key:secret), one single-row
  lookup ``SELECT data FROM rm_api_key WHERE id = %s`` and the same salted HMAC-SHA256 check;
- ``GET /api/1/action?filters=[...]&limit=&offset=&order_by=[...]``: the filters the benchmark sends
  (``state`` is a column; ``workflow_id``, ``datastore_id`` text paths; ``order_idx`` numeric, read with the
  same "a non-number reads as NULL" CASE dart uses), ``count(*)`` for ``total`` and the page with the same
  default order (updated DESC, id DESC) or the requested one (NULLS LAST, then id). Only what the
  benchmark sends is dart-exact: ``!=`` here is plain SQL, not dart's NULL-matching complement;
- ``GET /api/1/action/{id}``: one row by primary key;
- the same JSON envelope dart returns: ``{"results": [...], "limit", "offset", "total"}`` with items
  ``{"id", "version_id", "created", "updated", "data"}``.

Each gunicorn thread keeps one autocommit psycopg connection (no BEGIN/ROLLBACK round trips, no pool
checkout), which is what a hand-tuned endpoint would do.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import falcon
import psycopg
from gunicorn.app.base import BaseApplication
from psycopg.rows import tuple_row

COLUMNS = "id, version, created, updated, data"
_FILTER = re.compile(r"\s*([A-Za-z0-9_.-]+?)\s*(<=|>=|!=|=|<|>)\s*(\S+)\s*")
_NUMERIC = "CASE WHEN jsonb_typeof(data -> '{key}') = 'number' THEN (data ->> '{key}')::numeric END"
# Keys the bare endpoint knows: a column, a text path, or a numeric path. Anything else is a 400.
_KEYS = {
    "id": "id",
    "state": "state",
    "name": "name",
    "workflow_id": "(data ->> 'workflow_id')",
    "datastore_id": "(data ->> 'datastore_id')",
    "engine_name": "(data ->> 'engine_name')",
    "action_type_name": "(data ->> 'action_type_name')",
    "order_idx": _NUMERIC.format(key="order_idx"),
    "progress": _NUMERIC.format(key="progress"),
}
_NUMERIC_KEYS = {"order_idx", "progress"}


class BadRequest(Exception):
    pass


class Unauthorized(Exception):
    pass


class Db:
    """One autocommit connection per gunicorn thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()

    def conn(self) -> psycopg.Connection[Any]:
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            # Timestamps come back in UTC, as dart's UTCDateTime gives them.
            conn = psycopg.connect(self.url, autocommit=True, row_factory=tuple_row,
                                   options="-c TimeZone=UTC")
            self.local.conn = conn
        return conn


def authenticate(db: Db, header: str | None) -> str:
    if not header:
        raise Unauthorized("missing Authorization header")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise Unauthorized("malformed Basic credentials") from exc
    elif scheme.lower() != "bearer":
        raise Unauthorized("unsupported scheme")
    key, _, secret = value.strip().partition(":")
    row = db.conn().execute("SELECT data FROM rm_api_key WHERE id = %s", (key,)).fetchone()
    if row is None:
        raise Unauthorized("unknown API key")
    data = row[0]
    digest = hmac.new(bytes.fromhex(data["salt"]), secret.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(digest, data["secret_hash"]):
        raise Unauthorized("wrong secret for API key")
    return str(data["user_id"])


def _int(get_param: Callable[[str], str | None], name: str, default: int, high: int = 10**9) -> int:
    raw = get_param(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name}: not an integer") from exc
    if not 0 <= value <= high:
        raise BadRequest(f"{name}: out of range")
    return value


def _envelope(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "version_id": row[1], "created": row[2].isoformat(), "updated": row[3].isoformat(),
            "data": row[4]}


def list_query(get_param: Callable[[str], str | None]) -> tuple[str, str, list[Any], list[Any], int, int]:
    """(count SQL, page SQL, where params, page params, limit, offset) for a list request's parameters."""
    limit = _int(get_param, "limit", 20, 10000)
    offset = _int(get_param, "offset", 0)
    where: list[str] = []
    params: list[Any] = []
    try:
        filters = json.loads(get_param("filters") or "[]")
        order_by = json.loads(get_param("order_by") or "[]")
    except ValueError as exc:
        raise BadRequest("filters/order_by: not JSON") from exc
    for text in filters:
        match = _FILTER.fullmatch(text)
        if match is None or match.group(1) not in _KEYS:
            raise BadRequest(f"could not parse filter: {text!r}")
        key, op, value = match.groups()
        if key in _NUMERIC_KEYS:
            where.append(f"{_KEYS[key]} {op} %s::numeric")
        else:
            collate = ' COLLATE "C"' if op not in ("=", "!=") else ""  # byte order for text ranges, as dart
            where.append(f"{_KEYS[key]}{collate} {op} %s")
        params.append(value)
    order: list[str] = []
    for item in order_by:
        key, _, direction = item.partition(" ")
        direction = (direction or "ASC").strip().upper()
        if key not in _KEYS or direction not in ("ASC", "DESC"):
            raise BadRequest(f"could not parse order_by: {item!r}")
        order.append(f"{_KEYS[key]} {direction} NULLS LAST")
    order_sql = ", ".join([*order, "id"]) if order else "updated DESC, id DESC"
    where_sql = " WHERE " + " AND ".join(where) if where else ""
    count_sql = f"SELECT count(*) FROM rm_action{where_sql}"
    page_sql = f"SELECT {COLUMNS} FROM rm_action{where_sql} ORDER BY {order_sql} LIMIT %s OFFSET %s"
    return count_sql, page_sql, params, [*params, limit, offset], limit, offset


class ActionList:
    def __init__(self, db: Db) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        count_sql, page_sql, where_params, page_params, limit, offset = list_query(req.get_param)
        conn = self.db.conn()
        total = conn.execute(count_sql, where_params).fetchone()[0]  # type: ignore[index]
        rows = conn.execute(page_sql, page_params).fetchall()
        resp.media = {"results": [_envelope(r) for r in rows], "limit": limit, "offset": offset,
                      "total": total}


class ActionItem:
    def __init__(self, db: Db) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        row = self.db.conn().execute(f"SELECT {COLUMNS} FROM rm_action WHERE id = %s",
                                     (entity_id,)).fetchone()
        if row is None:
            resp.status = falcon.HTTP_404
            resp.media = {"results": "ERROR", "error_message": f"action {entity_id} not found"}
            return
        resp.media = {"results": _envelope(row)}


class Auth:
    def __init__(self, db: Db) -> None:
        self.db = db

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any
    ) -> None:
        if resource is not None and req.path != "/health":
            req.context.user = authenticate(self.db, req.get_header("Authorization"))


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


def create_app(url: str) -> falcon.App:
    db = Db(url)
    app = falcon.App(middleware=[Auth(db)])

    def bad_request(req: Any, resp: falcon.Response, exc: Exception, params: Any) -> None:
        resp.status = falcon.HTTP_400
        resp.media = {"results": "ERROR", "error_message": str(exc)}

    def unauthorized(req: Any, resp: falcon.Response, exc: Exception, params: Any) -> None:
        resp.status = falcon.HTTP_401
        resp.media = {"results": "ERROR", "error_message": str(exc)}

    app.add_error_handler(BadRequest, bad_request)
    app.add_error_handler(Unauthorized, unauthorized)
    app.add_route("/health", Health())
    app.add_route("/api/1/action", ActionList(db))
    app.add_route("/api/1/action/{entity_id}", ActionItem(db))
    return app


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.url = url
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> falcon.App:
        return create_app(self.url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    # The options services/gunicorn_app.py gives `dart api`, word for word.
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        "threads": args.threads,
        "worker_class": "gthread",
        "accesslog": "-",
        "timeout": 60,
    }
    _Gunicorn(args.database_url, options).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
