"""The shapes of the UI's graph (reference §3.13, §5.10) over plain entity data: a node, the references an entity
holds to others (each one an edge of the graph), and the placeholder ids of unsaved entities (``UNSAVED-…``,
``PARENT-…``, ``CHILD-…``) that subgraph recipes use until a save gives them real ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from services.domain.ids import random_id

GRAPH_TYPES = ("action", "dataset", "datastore", "event", "subscription", "trigger", "workflow")
SUB_TYPE_FIELD = {"action": "action_type_name", "datastore": "engine_name", "trigger": "trigger_type_name"}
UNSAVED, PARENT, CHILD = "UNSAVED", "PARENT", "CHILD"
PLACEHOLDER_PREFIXES = (f"{UNSAVED}-", f"{PARENT}-", f"{CHILD}-")


@dataclass(frozen=True)
class Reference:
    """A field of an ``owner`` entity naming ``target`` entities (one id, or a list of them with ``many``).
    The edge it draws goes target -> owner, or owner -> target when ``outward`` (a trigger's workflows)."""

    owner: str
    path: tuple[str, ...]
    target: str
    many: bool = False
    outward: bool = False

    @property
    def field(self) -> str:
        return ".".join(self.path)

    def get(self, data: dict[str, Any]) -> Any:
        value: Any = data
        for part in self.path:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def ids(self, data: dict[str, Any]) -> list[str]:
        value = self.get(data)
        if self.many:
            return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
        return [value] if isinstance(value, str) and value else []

    def set(self, data: dict[str, Any], value: Any) -> None:
        holder = data
        for part in self.path[:-1]:
            holder = holder[part]
        holder[self.path[-1]] = value

    def edge(self, owner_id: str, target_id: str) -> dict[str, str]:
        if self.outward:
            return edge(self.owner, owner_id, self.target, target_id)
        return edge(self.target, target_id, self.owner, owner_id)


# The original's relationships (reference §3.13), as the fields that hold them.
REFERENCES: tuple[Reference, ...] = (
    Reference("action", ("datastore_id",), "datastore"),
    Reference("action", ("workflow_id",), "workflow"),
    Reference("action", ("args", "dataset_id"), "dataset"),
    Reference("action", ("args", "subscription_id"), "subscription"),
    Reference("workflow", ("datastore_id",), "datastore"),
    Reference("subscription", ("dataset_id",), "dataset"),
    Reference("trigger", ("workflow_ids",), "workflow", many=True, outward=True),
    Reference("trigger", ("args", "completed_workflow_id"), "workflow"),
    Reference("trigger", ("args", "event_id"), "event"),
    Reference("trigger", ("args", "subscription_id"), "subscription"),
    Reference("trigger", ("args", "completed_trigger_ids"), "trigger", many=True),
)


def references_of(entity_type: str) -> Iterator[Reference]:
    return (r for r in REFERENCES if r.owner == entity_type)


def node(entity_type: str, entity_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """A graph node as the original served it: a dataset has no state; actions, datastores and triggers carry
    their action type, engine and trigger type as ``sub_type``; a RUNNING action shows its progress."""
    name = data.get("name")
    state = None if entity_type == "dataset" else data.get("state")
    if entity_type == "action" and state == "RUNNING":
        progress = data.get("progress")
        share = float(progress) if isinstance(progress, int | float) and not isinstance(progress, bool) else 0.0
        name = f"{name} - {int(100 * share)}%"
    sub_field = SUB_TYPE_FIELD.get(entity_type)
    return {"entity_type": entity_type, "entity_id": entity_id, "name": name, "state": state,
            "sub_type": data.get(sub_field) if sub_field else None}


def edge(source_type: str, source_id: str, destination_type: str, destination_id: str) -> dict[str, str]:
    return {"source_type": source_type, "source_id": source_id, "destination_type": destination_type,
            "destination_id": destination_id}


def is_placeholder(entity_id: Any) -> bool:
    return isinstance(entity_id, str) and entity_id.startswith(PLACEHOLDER_PREFIXES)


def node_id(entity_type: str, entity_id: str) -> str:
    """An entity map's key: ``<type>-<id>``."""
    return f"{entity_type}-{entity_id}"


def split_node_id(key: str) -> tuple[str, str]:
    entity_type, _, entity_id = key.partition("-")
    return entity_type, entity_id


def sub_graph(entities: list[tuple[str, dict[str, Any]]], *, name: str, description: str | None,
              related_type: str | None, related_is_a: str | None, icon: str | None,
              md_icon: str | None = None) -> dict[str, Any]:
    """A recipe as ``GET /graph/sub_graph`` serves it: its entities (``(type, {id, data})``) with fresh
    placeholder ids, so two copies of one recipe can be edited side by side, drawn as a graph and keyed by
    node id in ``entity_map``."""
    fresh = randomized([(t, {"id": e.get("id"), "version_id": None, "created": None, "updated": None,
                             "data": e.get("data") or {}}) for t, e in entities])
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for entity_type, entity in fresh:
        data = entity["data"]
        nodes.append(node(entity_type, entity["id"], data))
        for ref in references_of(entity_type):
            for target in ref.ids(data):
                found = ref.edge(entity["id"], target)
                if found not in edges:
                    edges.append(found)
    return {
        "name": name, "description": description, "related_type": related_type, "related_is_a": related_is_a,
        "graph": {"nodes": nodes, "edges": edges},
        "entity_map": {node_id(t, e["id"]): e for t, e in fresh},
        "icon": icon, "md_icon": md_icon,
    }


def randomized(entities: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The entities with each one's placeholder id (``UNSAVED-workflow1``, or ``PARENT-1`` for an entity that
    stands for the selected one) replaced, wherever it appears as a whole JSON string, by a fresh one with the
    same prefix. A ``PARENT-1`` or ``CHILD-1`` that is only referenced stays: the UI maps it to the selected
    entity in ``related_entity_data``."""
    fresh: dict[str, str] = {}
    for _, entity in entities:
        old = entity.get("id")
        if isinstance(old, str) and old not in fresh:
            prefix = next((p for p in (PARENT, CHILD) if old.startswith(p)), UNSAVED)
            fresh[old] = f"{prefix}-{random_id()}"
    out = []
    for entity_type, entity in entities:
        text = json.dumps(entity)
        for old, new in fresh.items():
            text = text.replace(json.dumps(old), json.dumps(new))
        out.append((entity_type, json.loads(text)))
    return out

