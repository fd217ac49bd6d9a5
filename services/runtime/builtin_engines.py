"""Start-up registration of the built-in engines (design.md §7: "every built-in engine registered"): each is
created if missing and brought up to date if its definition changed; a start with nothing changed appends
nothing. The bodies are the ones the engines' own ``register`` subcommands post (engines/catalog.py)."""

from __future__ import annotations

import logging

from engines.catalog import BUILT_IN_ENGINES, BuiltInEngine
from services.commands.auth import Principal
from services.commands.entities import EntityService
from services.commands.subgraph_definitions import register_definitions
from services.domain.errors import BadRequest

log = logging.getLogger("dart.up")
# Who the registrations are recorded as (the events' actor): dart itself, with an admin's rights.
SYSTEM = Principal(key="dart-up", user_id="dart", scope="admin")


def register_builtin_engines(entities: EntityService,
                             engines: tuple[BuiltInEngine, ...] = BUILT_IN_ENGINES) -> dict[str, str]:
    """Create or update every built-in engine; engine name -> "created", "updated", "unchanged" or "failed".
    One that fails (ECS refusing its task definition, say) is logged and the others still register: dart
    runs without it, and the next start tries again."""
    outcome: dict[str, str] = {}
    for engine in engines:
        try:
            outcome[engine.name] = _register(entities, engine)
            _register_definitions(entities, engine)
        except Exception:
            log.exception("built-in engine %s could not be registered", engine.name)
            outcome[engine.name] = "failed"
        if outcome[engine.name] != "unchanged":
            log.info("built-in engine %s %s", engine.name, outcome[engine.name])
    return outcome


def _register_definitions(entities: EntityService, engine: BuiltInEngine) -> None:
    """The engine's stored UI recipes (the no_op engine's "workflow chaining demo"), kept as its code says."""
    found = entities.reader.find_by("engine", name=engine.name)
    if found and register_definitions(entities, found[0]["id"], engine.subgraph_definitions(), SYSTEM) != "unchanged":
        log.info("built-in engine %s: subgraph definitions registered", engine.name)


def _register(entities: EntityService, engine: BuiltInEngine) -> str:
    body = {"data": engine.registration()}
    for _ in range(2):  # a second process may create it between our look and our create: then update theirs
        found = entities.reader.find_by("engine", name=engine.name)
        if found:
            before = found[0]["version_id"]
            after = entities.replace("engine", found[0]["id"], body, SYSTEM)
            return "unchanged" if after["version_id"] == before else "updated"
        try:
            entities.create("engine", body, SYSTEM)
            return "created"
        except BadRequest as exc:
            if "already exists" not in str(exc):
                raise
    raise RuntimeError(f"built-in engine {engine.name}: could not be registered")
