"""``POST /event/{id}/fire``: an external event over HTTP, fired exactly as the broker inbox fires one
(services/commands/triggers.py ``fire_event``), so event triggers work on every wiring, broker or none."""

from __future__ import annotations

import uuid

import falcon

from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.commands.triggers import fire_event


class EventFire:
    """Every ACTIVE event trigger on the event fires, once per request (or per caller's Idempotency-Key). An
    INACTIVE event fires nothing and answers 200 with ``fired: false``, as the inbox acknowledges such a message;
    an unknown event is a 404."""

    def __init__(self, service: EntityService, orchestration: Orchestration) -> None:
        self.service = service
        self.orchestration = orchestration

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("event", entity_id)  # 404 for an unknown event
        key = req.get_header("Idempotency-Key")
        caller = req.context.principal.key  # an Idempotency-Key is the caller's own: scoped to their key
        cause = uuid.uuid5(uuid.NAMESPACE_URL, f"event-fire/{caller}/{entity_id}/{key}") if key else uuid.uuid4()
        fired = fire_event(self.orchestration, entity_id, cause)
        resp.media = {"results": "OK", "fired": fired is not None, "trigger_ids": fired or []}
