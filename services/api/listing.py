"""List queries (reference §6): limit/offset/total, the ``filters`` grammar typed by the entities' JSON
schemas, ``order_by`` (actions), and the original's convenience parameters."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import falcon
from cachetools import TTLCache

from projections import filters as grammar
from projections.reads import TABLES, Page
from services.commands.entities import EntityService
from services.domain import schemas
from services.domain.errors import BadRequest

DEFAULT_ORDER = {"engine": "asc", "dataset": "asc"}
CONVENIENCE = {"action": ("datastore_id", "workflow_id"), "workflow_instance": ("workflow_id",)}


SCHEMA_CACHE_SECONDS = 5.0
Schemas = list[dict[str, Any]]


class SchemaCache:
    """The schemas that type each kind's filters, kept a few seconds per app (they change only when an engine
    does, and only type filter values). The app's threads share it and cachetools caches are not
    thread-safe, hence the lock; a miss computes outside it, so two threads may both compute one kind."""

    def __init__(self, seconds: float = SCHEMA_CACHE_SECONDS, timer: Callable[[], float] = time.monotonic) -> None:
        self._cache: TTLCache[str, Schemas] = TTLCache(maxsize=len(TABLES), ttl=seconds, timer=timer)
        self._lock = threading.Lock()

    def get(self, category: str, compute: Callable[[], Schemas]) -> Schemas:
        with self._lock:
            found = self._cache.get(category)
        if found is None:
            found = compute()
            with self._lock:
                self._cache[category] = found
        return found


def data_schemas(service: EntityService, category: str, cache: SchemaCache) -> Schemas:
    """Every schema an entity's data may follow, for typing filters: one per engine or trigger type where
    they differ."""
    return cache.get(category, lambda: _data_schemas(service, category))


def _data_schemas(service: EntityService, category: str) -> list[dict[str, Any]]:
    if category in ("action", "datastore"):
        found: list[dict[str, Any]] = []
        for engine in service.reader.find_by("engine"):
            data = engine["data"]
            if category == "datastore":
                found.append(schemas.datastore_schema(data.get("options_json_schema")))
            else:
                found += [schemas.action_schema(t.get("params_json_schema"))
                          for t in data.get("supported_action_types") or []]
        return found or [schemas.action_schema(None) if category == "action" else schemas.datastore_schema(None)]
    if category == "trigger":
        return [schemas.trigger_schema(t.params_json_schema) for t in schemas.all_trigger_types()]
    return [schemas.schema_for(category)]


_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() and int() take "²", "٥" and "1_0"
BIGINT = 2**63 - 1
MAX_LIMIT = 10000
MAX_FILTERS = 50  # SQLite refuses a query of ~1,000 (its expression tree); no list needs more than a few


def int_param(req: falcon.Request, name: str, default: int, low: int = 0, high: int = BIGINT) -> int:
    """An integer query parameter; absent is ``default``, present but empty or not an integer is a 400."""
    raw = req.get_param(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        raise BadRequest(f"{name}: {raw!r} is not an integer" if raw else f"{name}: empty; give an integer or "
                         "leave the parameter out")
    value = int(raw) if len(raw) <= 20 else high + 1  # (int() refuses 4,301 digits and more)
    if not low <= value <= high:
        raise BadRequest(f"{name}: must be between {low} and {high}, not {raw}")
    return value


def page_params(req: falcon.Request, default_limit: int) -> tuple[int, int]:
    """``limit`` (0 to 10,000: 0 counts without rows) and ``offset``, the same on every list."""
    return int_param(req, "limit", default_limit, 0, MAX_LIMIT), int_param(req, "offset", 0)


def list_entities(service: EntityService, category: str, req: falcon.Request, cache: SchemaCache,
                  **fixed: str) -> Page:
    limit, offset = page_params(req, 20)
    table = TABLES[category]
    dialect = service.store.engine.dialect.name
    try:
        parsed = grammar.parse_filters(req.get_param("filters"))
    except grammar.FilterError as exc:
        raise BadRequest(f"filters: {exc}") from exc
    if len(parsed) > MAX_FILTERS:
        raise BadRequest(f"filters: at most {MAX_FILTERS} filters, not {len(parsed)}")
    try:
        ordering = grammar.parse_order_by(req.get_param("order_by")) if category == "action" else []
    except grammar.FilterError as exc:
        raise BadRequest(f"order_by: {exc}") from exc
    for name in CONVENIENCE.get(category, ()):
        value = req.get_param(name)
        if value:
            parsed.append(grammar.Filter(name, "=", value))
    parsed += [grammar.Filter(k, "=", v) for k, v in fixed.items()]
    typed = data_schemas(service, category, cache)
    try:
        where = [grammar.filter_clause(table, f, grammar.path_type(typed, f.key), dialect) for f in parsed]
    except grammar.FilterError as exc:
        raise BadRequest(f"filters: {exc}") from exc
    try:
        order = [grammar.order_clause(table, key, direction, grammar.path_type(typed, key), dialect)
                 for key, direction in ordering]
    except grammar.FilterError as exc:
        raise BadRequest(f"order_by: {exc}") from exc
    return service.reader.page(category, limit=limit, offset=offset, where=where, order=order,
                               default_order=DEFAULT_ORDER.get(category, "desc"))
