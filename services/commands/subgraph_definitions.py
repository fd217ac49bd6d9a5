"""Subgraph definitions (reference §3.11): an engine's stored UI recipes, an entity kind of their own (events,
read model, history), created under their engine (``POST /engine/{id}/subgraph_definition``), deleted on their
own or with the engine; and their registration with a built-in engine at start."""

from __future__ import annotations

from typing import Any

from events.streams import subgraph_definition
from services.commands.auth import Principal
from services.commands.engine_kinds import engine_by_name
from services.commands.kind_base import EntityService, Kind
from services.domain import schemas
from services.domain.errors import BadRequest
from services.domain.sub_graph_recipes import subgraph_definition_schema

CATEGORY = subgraph_definition.CATEGORY


class SubgraphDefinitionKind(Kind):
    category = CATEGORY
    created = subgraph_definition.SubgraphDefinitionCreated
    updated = subgraph_definition.SubgraphDefinitionUpdated
    deleted = subgraph_definition.SubgraphDefinitionDeleted
    default_order = "asc"

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        triggers = [t.name for t in schemas.all_trigger_types() if schemas.storable(t.name)]
        return subgraph_definition_schema(triggers)

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        data = super().validate(svc, data, before)
        engine = engine_by_name(svc, data.get("engine_name"))
        known = {t.get("name") for t in engine.get("supported_action_types") or [] if isinstance(t, dict)}
        for action in data.get("actions") or []:
            name = action["data"].get("action_type_name")
            if name not in known:
                raise BadRequest(f"action_type_name: unknown action: {name!r} for engine {engine.get('name')!r} "
                                 f"(actions[{data['actions'].index(action)}])")
        return data

    def prepare(self, svc: EntityService, data: dict[str, Any], who: Principal, parent: Any,
                entity_id: str) -> None:
        # The original's data has no user_id (the events' actor says who); engine_name is the owning engine's.
        data["engine_name"] = svc.reader.data("engine", parent).get("name")

    def merge(self, svc: EntityService, current: dict[str, Any], new: dict[str, Any],
              who: Principal) -> dict[str, Any]:
        """A replacement stays its engine's."""
        return {**new, "engine_name": current.get("engine_name")}


def definitions_of(svc: EntityService, engine_name: str) -> list[dict[str, Any]]:
    return svc.reader.find_by(CATEGORY, engine_name=engine_name)


def register_definitions(entities: Any, engine_id: str, definitions: list[dict[str, Any]],
                         who: Principal) -> str:
    """Make an engine's stored definitions those given (matched by name): a missing one created, a changed one
    replaced, one no longer given deleted; "unchanged" when nothing was appended. ``entities`` is the
    EntityService (services/commands/entities.py)."""
    engine_name = entities.reader.data("engine", engine_id).get("name")
    stored = {d["data"].get("name"): d for d in definitions_of(entities, engine_name)}
    outcome = "unchanged"
    for definition in definitions:
        body = {"data": {**definition, "engine_name": engine_name}}
        found = stored.pop(definition.get("name"), None)
        if found is None:
            entities.create(CATEGORY, body, who, engine_id)
            outcome = "changed"
        elif entities.replace(CATEGORY, found["id"], body, who)["version_id"] != found["version_id"]:
            outcome = "changed"
    for gone in stored.values():
        entities.delete(CATEGORY, gone["id"], who)
        outcome = "changed"
    return outcome
