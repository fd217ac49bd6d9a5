"""An engine's stored subgraph definitions (reference §3.11; the original's ``/engine/{id}/subgraph_definition``):
list them, and store one; one by id is the generic item route (``/subgraph_definition/{id}``)."""

from __future__ import annotations

import falcon

from services.api.resources import body, who
from services.commands.entities import EntityService
from services.commands.subgraph_definitions import CATEGORY, definitions_of


class EngineSubgraphDefinitions:
    """``GET``: the engine's definitions (404 for an unknown engine); ``POST``: store one for it (its
    ``engine_name`` is the engine's, whatever the body says)."""

    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        engine = self.service.reader.data("engine", entity_id)
        resp.media = {"results": definitions_of(self.service, str(engine.get("name")))}

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("engine", entity_id)  # 404 for an unknown engine, before the body is read
        created = self.service.create(CATEGORY, body(req), who(req), entity_id,
                                      idempotency_key=req.get_header("Idempotency-Key"))
        resp.media = {"results": created}
