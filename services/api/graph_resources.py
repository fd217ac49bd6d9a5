"""The graph routes of the UI (reference §5.10): entity identifiers for the graph's search box, the graph
around one entity, the subgraph recipes and the atomic save of an edited subgraph."""

from __future__ import annotations

import falcon

from projections.graph import GraphReader
from services.api.resources import body, who
from services.commands.entities import EntityService
from services.commands.sub_graph import SubGraphs, save_sub_graph
from services.domain.errors import BadRequest


class GraphEntityIdentifiers:
    """``GET /graph/entity_identifiers?search=``: up to 20 ``{entity_type, entity_id, name}``."""

    def __init__(self, service: EntityService) -> None:
        self.graphs = GraphReader(service.store)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        search = req.get_param("search")
        if not search:
            raise BadRequest("search: required (a part of an entity's id or name)")
        resp.media = {"results": self.graphs.identifiers(search)}


class EntityGraph:
    """``GET /graph/<entity_type>/{id}``: ``{nodes, edges}`` around the entity (404 when it does not exist)."""

    def __init__(self, service: EntityService, entity_type: str) -> None:
        self.graphs = GraphReader(service.store)
        self.entity_type = entity_type

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        resp.media = {"results": self.graphs.graph(self.entity_type, entity_id)}


class SubGraphCollection:
    """``GET /graph/sub_graph?related_type=&related_id=&engine_name=``: the recipes by engine name (``null`` for
    the engine-less ones); ``POST /graph/sub_graph``: save an entity map in one append."""

    def __init__(self, service: EntityService) -> None:
        self.service = service
        self.sub_graphs = SubGraphs(service)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        found = self.sub_graphs.recipes(req.get_param("related_type"), req.get_param("related_id"),
                                        req.get_param("engine_name"))
        # JSON keys are text: the engine-less recipes are under "null", as the original's JSON had them
        resp.media = {"results": {("null" if name is None else name): items for name, items in found.items()}}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        saved = save_sub_graph(self.service, body(req), who(req))
        resp.media = {"results": saved}
