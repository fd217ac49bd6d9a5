"""The engine protocol (reference §10): check-out and check-in of an action by the engine running it.

Both decide on the action's stream with its version as the expected version, so two engines can never
both check out one action: the loser reloads, finds it RUNNING and gets the original's 400.
"""

from __future__ import annotations

from typing import Any

import falcon

from events.errors import ConcurrencyError
from events.streams.action import ActionCheckedIn, ActionCheckedOut
from events.streams.api_key import ApiKeyRevoked
from events.streams.workflow_instance import WorkflowInstanceStarted
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.commands.entities import RETRIES, EntityService
from services.commands.kinds import now_iso
from services.domain.errors import BadRequest, Conflict, NotFound

RESULTS = {"SUCCESS": "COMPLETED", "FAILURE": "FAILED"}


class CheckOut:
    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_put(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        reader = self.service.reader
        for _ in range(RETRIES):
            row = reader.row("action", entity_id)
            if row is None:
                raise NotFound("action", entity_id)
            action = row.data
            if action.get("state") != "PENDING":
                raise BadRequest(f"action is no longer PENDING (it is {action.get('state')})")
            engines = reader.find_by("engine", name=action.get("engine_name"))
            if not engines:
                raise NotFound("engine", str(action.get("engine_name")))
            datastore = reader.row("datastore", str(action.get("datastore_id")))
            if datastore is None:
                raise NotFound("datastore", str(action.get("datastore_id")))
            meta = Metadata(actor=req.context.principal.user_id)
            started = now_iso()
            appends = [StreamAppend(f"action-{entity_id}", row.version, [NewEvent(ActionCheckedOut(started), meta)])]
            if action.get("first_in_workflow") and action.get("workflow_instance_id"):
                appends.append(StreamAppend(f"workflow_instance-{action['workflow_instance_id']}",
                                            ExpectedVersion.ANY, [NewEvent(WorkflowInstanceStarted(started), meta)]))
            try:
                self.service.store.append(*appends)
            except ConcurrencyError:
                continue
            store_envelope = reader.get("datastore", datastore.id)
            resp.media = {"results": {
                "engine": engines[0],
                "action": reader.get("action", entity_id),
                "datastore": _with_secrets(self.service, store_envelope),
            }}
            return
        raise Conflict(f"action {entity_id} is changing too fast; try again")


def _with_secrets(service: EntityService, envelope: dict[str, Any]) -> dict[str, Any]:
    """The engine, and only the engine at check-out, receives the datastore's secret args."""
    secrets = getattr(service.context, "secrets", None)
    if secrets is None:
        return envelope
    engine = service.reader.find_by("engine", name=envelope["data"].get("engine_name"))
    options = (engine[0]["data"].get("options_json_schema") if engine else None) or {}
    args = dict(envelope["data"].get("args") or {})
    for prop, spec in (options.get("properties") or {}).items():
        if isinstance(spec, dict) and spec.get("x-dart-secret"):
            value = secrets.get(f"dart-datastore-{envelope['id']}-{prop}")
            if value is not None:
                args[prop] = value
    return {**envelope, "data": {**envelope["data"], "args": args}}


class CheckIn:
    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_put(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        result = req.get_media(default_when_empty=None)
        if not isinstance(result, dict):
            raise BadRequest("body: expected an ActionResult object {state, error_message, consume_subscription_state}")
        unknown = sorted(set(result) - {"state", "error_message", "consume_subscription_state"})
        if unknown:
            raise BadRequest(f"body: unknown field(s): {', '.join(unknown)}")
        if not isinstance(result.get("state"), str) or result["state"] not in RESULTS:
            raise BadRequest(f"state: must be SUCCESS or FAILURE, not {result.get('state')!r}")
        consume = result.get("consume_subscription_state")
        if consume is not None and consume not in ("SUCCESS", "FAILURE"):
            raise BadRequest(f"consume_subscription_state: must be SUCCESS, FAILURE or null, not {consume!r}")
        error = result.get("error_message")
        if error is not None and not isinstance(error, str):
            raise BadRequest("error_message: must be a string or null")
        for _ in range(RETRIES):
            row = self.service.reader.row("action", entity_id)
            if row is None:
                raise NotFound("action", entity_id)
            if row.data.get("state") != "RUNNING":
                raise BadRequest(f"action is not RUNNING (it is {row.data.get('state')})")
            event = ActionCheckedIn(RESULTS[result["state"]], error if result["state"] == "FAILURE" else None,
                                    consume)
            meta = Metadata(actor=req.context.principal.user_id)
            appends = [StreamAppend(f"action-{entity_id}", row.version, [NewEvent(event, meta)])]
            principal = req.context.principal
            if principal.scope == f"action:{entity_id}":  # the launch token's work is done
                appends.append(StreamAppend(f"api_key-{principal.key}", ExpectedVersion.ANY,
                                            [NewEvent(ApiKeyRevoked(), meta)]))
            try:
                self.service.store.append(*appends)
            except ConcurrencyError:
                continue
            resp.media = {"results": "OK"}
            return
        raise Conflict(f"action {entity_id} is changing too fast; try again")
