"""Helpers for the postgresql_engine's tests: a datastore envelope for a test database, and a stand-in for the
few dart calls an action handler makes (the end-to-end tests use a real `dart up` instead)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from engines.sdk import ActionContext


def datastore(pg_url: str, **args: Any) -> dict[str, Any]:
    info = conninfo_to_dict(pg_url)
    base = {"host": info.get("host", "127.0.0.1"), "port": int(info.get("port") or 5432),
            "database": info["dbname"], "user": info.get("user", "postgres"), "password": "unused-with-trust"}
    return {"id": "ds1", "data": {"engine_name": "postgresql_engine", "args": {**base, **args}}}


def context(pg_url: str, action_type: str, args: dict[str, Any], **datastore_args: Any) -> ActionContext:
    action = {"id": uuid.uuid4().hex[:12], "data": {"action_type_name": action_type, "args": args}}
    return ActionContext({"id": "e1", "data": {}}, action, datastore(pg_url, **datastore_args))


class Dart:
    """What handlers read from dart (datasets, subscriptions, elements), and what they report."""

    def __init__(self, entities: dict[str, Any] | None = None, elements: list[dict[str, Any]] | None = None):
        self.entities = entities or {}
        self.elements = elements or []
        self.progress: list[tuple[float | None, Any]] = []

    def get(self, path: str, params: Any = None) -> Any:
        return self.entities[path]

    def subscription_elements(self, action_id: str) -> list[dict[str, Any]]:
        return self.elements

    def report_progress(self, action_id: str, progress: float | None = None, extra_data: Any = None) -> None:
        self.progress.append((progress, extra_data))


def query(pg_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []
