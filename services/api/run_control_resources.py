"""Run control over HTTP (issue 15): ``POST /workflow/instance/{id}/cancel`` and
``GET /action/{id}/logs?offset=&follow=``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import falcon

from services.api.listing import int_param
from services.api.route import LogReader
from services.commands.cancel import cancel_instance
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.domain.completion import DONE
from services.domain.errors import BadRequest

FOLLOW_POLL_SECONDS = 0.5
FOLLOW_LIMIT_SECONDS = 900.0  # a follower reconnects from its offset after this


class InstanceCancel:
    """Cancel a QUEUED or RUNNING instance (idempotent: a cancelled one answers as it is)."""

    def __init__(self, orchestration: Orchestration) -> None:
        self.orchestration = orchestration

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        body = req.get_media(default_when_empty=None)
        reason = None
        if body is not None:
            if not isinstance(body, dict) or set(body) - {"reason"}:
                raise BadRequest('the body may only hold "reason" (a string), or be empty')
            reason = body.get("reason")
            if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
                raise BadRequest("reason: a string of at most 500 characters")
        done = cancel_instance(self.orchestration, entity_id, req.context.principal.user_id, reason)
        resp.media = {"results": "OK", "workflow_instance_id": done.instance_id, "state": done.state,
                      "error_message": done.message, "cancelled_actions": list(done.actions),
                      "already_cancelled": done.already}


class ActionLogs:
    """An action's engine output from ``offset`` (bytes); ``follow=true`` streams it as text until the action
    has ended and everything is sent."""

    def __init__(self, entities: EntityService, logs: LogReader | None) -> None:
        self.entities = entities
        self.logs = logs

    def _read(self, action: dict[str, Any], offset: int) -> Any:
        reader = self.entities.reader
        data = action["data"]
        engines = reader.find_by("engine", name=data.get("engine_name"))
        datastore = reader.row("datastore", str(data.get("datastore_id")))
        if self.logs is None:
            raise BadRequest("this server keeps no action logs")
        return self.logs.read({**data, "id": action["id"]}, engines[0]["data"] if engines else None,
                              datastore.data if datastore is not None else None, offset)

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        action = self.entities.reader.get("action", entity_id)
        offset = int_param(req, "offset", 0)
        follow = req.get_param_as_bool("follow", default=False)
        if follow:
            resp.content_type = "text/plain; charset=utf-8"
            resp.set_header("Cache-Control", "no-store")
            resp.set_header("X-Accel-Buffering", "no")
            resp.stream = self._follow(entity_id, action, offset)
            return
        chunk = self._read(action, offset)
        resp.media = {"results": {"action_id": entity_id, "text": chunk.text, "offset": chunk.offset,
                                  "next_offset": chunk.next_offset, "source": chunk.source,
                                  "state": action["data"].get("state"),
                                  "finished": action["data"].get("state") in DONE}}

    def _follow(self, action_id: str, action: dict[str, Any], offset: int) -> Iterator[bytes]:
        deadline = time.monotonic() + FOLLOW_LIMIT_SECONDS
        while time.monotonic() < deadline:
            ended = action["data"].get("state") in DONE
            chunk = self._read(action, offset)
            if chunk.text:
                offset = chunk.next_offset
                yield chunk.text.encode()
                continue
            if ended:
                return
            time.sleep(FOLLOW_POLL_SECONDS)
            action = self.entities.reader.get("action", action_id)
