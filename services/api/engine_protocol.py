"""The engine protocol's two resources (reference §10): ``PUT /engine/action/{id}/checkout`` and ``/checkin``.
They parse the request and render the result; the rules are services/commands/engine_protocol.py."""

from __future__ import annotations

import falcon

from services.commands import engine_protocol as protocol
from services.commands.entities import EntityService


class CheckOut:
    def __init__(self, service: EntityService, secrets: protocol.SecretReader | None) -> None:
        self.service = service
        self.secrets = secrets

    def on_put(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        principal = req.context.principal
        checked_out = protocol.check_out(self.service, entity_id, principal.user_id, self.secrets,
                                         protocol.checkout_id(entity_id, principal.key,
                                                              req.get_header("Idempotency-Key")))
        resp.media = {"results": checked_out.as_dict()}


class CheckIn:
    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_put(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        result = protocol.parse_action_result(req.get_media(default_when_empty=None))
        protocol.check_in(self.service, entity_id, result, req.context.principal)
        resp.media = {"results": "OK"}
