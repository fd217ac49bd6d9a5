"""The graph (reference §5.10): an entity's graph, the search box's identifiers, subgraph recipes, the atomic
save of an entity map, and engines' stored subgraph definitions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.client.entity import LoggedEvent
from services.client.transport import Transport, quote


class Graph:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _results(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        return self.transport.request(method, path, body, params).get("results")

    def of(self, entity: str, entity_id: str) -> dict[str, Any]:
        """``{nodes, edges}`` linked to an entity (``of("workflow", id)``)."""
        return dict(self._results("GET", f"/graph/{entity}/{quote(entity_id)}"))

    def identifiers(self, search: str) -> list[dict[str, Any]]:
        return list(self._results("GET", "/graph/entity_identifiers", params={"search": search}) or [])

    def recipes(self, related_type: str | None = None, related_id: str | None = None,
                engine_name: str | None = None) -> Any:
        return self._results("GET", "/graph/sub_graph", params={
            "related_type": related_type, "related_id": related_id, "engine_name": engine_name})

    def save(self, unsaved_entities: Mapping[str, Any], related_entity_data: Mapping[str, Any] | None = None,
             *, source: str | None = None) -> dict[str, Any]:
        """Create an entity map (``<type>-UNSAVED-<n>`` keys, ``UNSAVED-<n>`` in references) in one append:
        all or nothing; ``{key: created entity}``. ``source`` is recorded in the events' metadata."""
        body: dict[str, Any] = {"unsaved_entities": dict(unsaved_entities)}
        if related_entity_data:
            body["related_entity_data"] = dict(related_entity_data)
        headers = {"X-Dart-Source": source} if source else None
        return dict(self.transport.request("POST", "/graph/sub_graph", body, headers=headers).get("results") or {})

    def definitions(self, engine_id: str) -> list[dict[str, Any]]:
        """An engine's stored subgraph definitions."""
        return list(self._results("GET", f"/engine/{quote(engine_id)}/subgraph_definition") or [])

    def create_definition(self, engine_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._results("POST", f"/engine/{quote(engine_id)}/subgraph_definition", {"data": dict(data)}))

    def definition(self, definition_id: str, *, as_of: int | str | None = None) -> dict[str, Any]:
        params = {"as_of": as_of} if as_of is not None else None
        return dict(self._results("GET", f"/subgraph_definition/{quote(definition_id)}", params=params))

    def delete_definition(self, definition_id: str) -> None:
        self.transport.request("DELETE", f"/subgraph_definition/{quote(definition_id)}")

    def definition_history(self, definition_id: str) -> list[LoggedEvent]:
        events = self._results("GET", f"/subgraph_definition/{quote(definition_id)}/history",
                               params={"limit": 1000})
        return [LoggedEvent.from_json(raw) for raw in events or []]
