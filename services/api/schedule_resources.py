"""A schedule's controls (issue 15 item 5): ``POST /trigger/{id}/pause`` and ``/unpause`` with a reason, and
``POST /trigger/{id}/backfill`` with ``start``, ``end``, ``dry_run`` (services/commands/schedules.py)."""

from __future__ import annotations

import falcon

from services.api.body import check_value
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.commands.schedules import backfill, set_paused
from services.domain import schedules


class TriggerPause:
    """Pause (``paused=True``) or unpause a scheduled trigger; answers the trigger and whether it changed."""

    def __init__(self, service: EntityService, orchestration: Orchestration, paused: bool) -> None:
        self.service = service
        self.orchestration = orchestration
        self.paused = paused

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        body = req.get_media(default_when_empty=None)
        check_value(body)
        self.service.reader.get("trigger", entity_id)  # 404 before the body's 400
        reason = schedules.reason_of(body)
        changed = set_paused(self.orchestration, entity_id, self.paused, reason, req.context.principal.user_id)
        resp.media = {"results": self.service.reader.get("trigger", entity_id), "changed": changed}


class TriggerBackfill:
    """The scheduled times of a range: listed (``dry_run``) or fired, each once whoever fires it."""

    def __init__(self, service: EntityService, orchestration: Orchestration) -> None:
        self.service = service
        self.orchestration = orchestration

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        body = req.get_media(default_when_empty=None)
        check_value(body)
        self.service.reader.get("trigger", entity_id)
        request = schedules.backfill_request(body)
        done = backfill(self.orchestration, entity_id, request, req.context.principal.user_id)
        resp.media = {"results": done.as_dict(request.dry_run)}
