"""``GET /graph/sub_graph``: the recipes for a selected entity (reference §5.10), by engine name: the built-in
ones and the engines' stored subgraph definitions, each with fresh placeholder ids and its entities' unset
nullable fields as null (as every entity is served). The save is services/commands/sub_graph_save.py."""

from __future__ import annotations

from typing import Any

from projections.entities import with_nulls
from services.commands.kind_base import EntityService
from services.commands.sub_graph_save import save_sub_graph
from services.commands.subgraph_definitions import CATEGORY
from services.domain.errors import BadRequest
from services.domain.graph import GRAPH_TYPES, split_node_id
from services.domain.sub_graph_recipes import (
    Recipes,
    datastore_recipe,
    definition_recipe,
    engine_recipes,
    engineless_recipes,
    merge,
)

__all__ = ["SubGraphs", "save_sub_graph"]
RELATED_TYPES = (*GRAPH_TYPES, "workflow_instance")


class SubGraphs:
    def __init__(self, service: EntityService) -> None:
        self.service = service

    def recipes(self, related_type: str | None, related_id: str | None, engine_name: str | None) -> Recipes:
        """The original's ``get_sub_graphs``: an engine's recipes for ``related_type`` when an engine is named
        (or found from ``related_id``: a workflow's or action's datastore, a datastore), else the engine-less
        ones; plus the stored definitions for that type; plus, with nothing selected, a datastore per engine."""
        reader = self.service.reader
        if related_type is not None and related_type not in RELATED_TYPES:
            raise BadRequest(f"related_type: must be one of {', '.join(RELATED_TYPES)}, not {related_type!r}")
        if not engine_name and related_id:
            engine_name = self._engine_of(related_type, related_id)
        engine = None
        if engine_name:
            found = reader.find_by("engine", name=engine_name)
            if not found:
                raise BadRequest(f"engine_name: unknown engine {engine_name!r}")
            engine = found[0]["data"]
        static: list[tuple[str | None, list[dict[str, Any]]]]
        if engine is None:
            static = [(None, engineless_recipes(related_type))]
        else:
            static = [(engine_name, engine_recipes(engine, related_type))]
        stored = [(d["data"].get("engine_name"), [definition_recipe(d["data"])])
                  for d in reader.find_by(CATEGORY, **({"engine_name": engine_name} if engine_name else {}))
                  if d["data"].get("related_type") == related_type]
        per_engine: list[tuple[str | None, list[dict[str, Any]]]] = []
        if related_type is None:
            per_engine = [(e["data"]["name"], [datastore_recipe(e["data"]["name"])]) for e in reader.find_by("engine")]
        return {name: [_served(r) for r in items] for name, items in merge(static, stored, per_engine).items()}

    def _engine_of(self, related_type: str | None, related_id: str) -> str | None:
        """The engine of a selected datastore, workflow (its datastore's) or action; 404 when it is not there."""
        reader = self.service.reader
        if related_type == "datastore":
            return reader.data("datastore", related_id).get("engine_name")
        if related_type == "workflow":
            store_id = reader.data("workflow", related_id).get("datastore_id")
            return reader.data("datastore", str(store_id)).get("engine_name")
        if related_type == "action":
            return reader.data("action", related_id).get("engine_name")
        return None


def _served(recipe: dict[str, Any]) -> dict[str, Any]:
    entity_map = {key: {**entity, "data": with_nulls(split_node_id(key)[0], entity["data"])}
                  for key, entity in recipe["entity_map"].items()}
    return {**recipe, "entity_map": entity_map}
