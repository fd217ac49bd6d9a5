"""The engine protocol (reference §10): check-out and check-in of an action by the engine running it.

Both decide on the action's stream with its version as the expected version, so two engines can never
both check out one action: the loser decides again on fresh state, finds it RUNNING and gets the original's 400.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from events.streams.action import ActionCheckedIn, ActionCheckedOut
from events.streams.api_key import ApiKeyRevoked
from events.streams.workflow_instance import WorkflowInstanceStarted
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.commands.auth import Principal
from services.commands.entities import EntityService
from services.commands.kind_base import now_iso
from services.commands.retry import retry_on_conflict
from services.commands.secret_args import Secrets, secret_args
from services.domain.errors import BadRequest, NotFound

RESULTS = {"SUCCESS": "COMPLETED", "FAILURE": "FAILED"}
RESULT_FIELDS = frozenset({"state", "error_message", "consume_subscription_state"})


SecretReader = Secrets  # where a datastore's secret args are kept (services/adapters/secrets.py)


@dataclass(frozen=True)
class CheckedOut:
    """What the engine receives at check-out: its engine, the action, and the datastore with its secrets."""

    engine: dict[str, Any]
    action: dict[str, Any]
    datastore: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "action": self.action, "datastore": self.datastore}


@dataclass(frozen=True)
class ActionResult:
    """An engine's check-in body (the original's ActionResult)."""

    state: str  # SUCCESS | FAILURE
    error_message: str | None = None
    consume_subscription_state: str | None = None


def parse_action_result(body: Any) -> ActionResult:
    """The check-in body, checked field by field; a 400 names the first field that is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected an ActionResult object {state, error_message, consume_subscription_state}")
    unknown = sorted(set(body) - RESULT_FIELDS)
    if unknown:
        raise BadRequest(f"body: unknown field(s): {', '.join(unknown)}")
    if not isinstance(body.get("state"), str) or body["state"] not in RESULTS:
        raise BadRequest(f"state: must be SUCCESS or FAILURE, not {body.get('state')!r}")
    consume = body.get("consume_subscription_state")
    if consume is not None and consume not in ("SUCCESS", "FAILURE"):
        raise BadRequest(f"consume_subscription_state: must be SUCCESS, FAILURE or null, not {consume!r}")
    error = body.get("error_message")
    if error is not None and not isinstance(error, str):
        raise BadRequest("error_message: must be a string or null")
    return ActionResult(body["state"], error, consume)


def checkout_id(action_id: str, caller: str, idempotency_key: str | None) -> uuid.UUID | None:
    """The event id of a check-out sent with an Idempotency-Key (the caller's own: scoped to its API key)."""
    if not idempotency_key:
        return None
    return uuid.uuid5(uuid.NAMESPACE_URL, f"dart:checkout:{action_id}:{caller}:{idempotency_key}")


def check_out(service: EntityService, action_id: str, actor: str, secrets: SecretReader | None,
              event_id: uuid.UUID | None = None) -> CheckedOut:
    """PENDING -> RUNNING for the engine ``actor`` runs; starts the instance with its first action. Given
    ``event_id`` (``checkout_id``), a check-out this very request already made is answered again: its answer
    was lost, and its engine retried."""
    reader = service.reader

    def attempt() -> tuple[dict[str, Any], str]:
        row = reader.row("action", action_id)
        if row is None:
            raise NotFound("action", action_id)
        action = row.data
        if action.get("state") != "PENDING":
            if not (event_id is not None and action.get("state") == "RUNNING"
                    and service.store.read_by_ids([event_id])):
                raise BadRequest(f"action is no longer PENDING (it is {action.get('state')})")
            engines = reader.find_by("engine", name=action.get("engine_name"))
            if not engines:
                raise NotFound("engine", str(action.get("engine_name")))
            return engines[0], str(action.get("datastore_id"))
        engines = reader.find_by("engine", name=action.get("engine_name"))
        if not engines:
            raise NotFound("engine", str(action.get("engine_name")))
        datastore = reader.row("datastore", str(action.get("datastore_id")))
        if datastore is None:
            raise NotFound("datastore", str(action.get("datastore_id")))
        meta = Metadata(actor=actor)
        started = now_iso()
        appends = [StreamAppend(f"action-{action_id}", row.version,
                                [NewEvent(ActionCheckedOut(started), meta, event_id or uuid.uuid4())])]
        if action.get("first_in_workflow") and action.get("workflow_instance_id"):
            appends.append(StreamAppend(f"workflow_instance-{action['workflow_instance_id']}",
                                        ExpectedVersion.ANY, [NewEvent(WorkflowInstanceStarted(started), meta)]))
        service.store.append(*appends)
        return engines[0], datastore.id

    engine, datastore_id = retry_on_conflict(attempt, what=f"action {action_id}")
    return CheckedOut(engine, reader.get("action", action_id),
                      with_secrets(service, reader.get("datastore", datastore_id), secrets))


def with_secrets(service: EntityService, envelope: dict[str, Any], secrets: Secrets | None) -> dict[str, Any]:
    """The engine, and only the engine at check-out, receives the datastore's secret args (a run's clone of
    a TEMPLATE datastore: its template's)."""
    if secrets is None:
        return envelope
    engine = service.reader.find_by("engine", name=envelope["data"].get("engine_name"))
    options = (engine[0]["data"].get("options_json_schema") if engine else None) or {}
    found = secret_args(service.store, secrets, envelope, options)
    if not found:
        return envelope
    args = {**(envelope["data"].get("args") or {}), **found}
    return {**envelope, "data": {**envelope["data"], "args": args}}


def check_in(service: EntityService, action_id: str, result: ActionResult, principal: Principal) -> None:
    """RUNNING -> FINISHING with the engine's result; an engine's launch token is revoked with it."""

    def attempt() -> None:
        row = service.reader.row("action", action_id)
        if row is None:
            raise NotFound("action", action_id)
        if row.data.get("state") != "RUNNING":
            raise BadRequest(f"action is not RUNNING (it is {row.data.get('state')})")
        event = ActionCheckedIn(RESULTS[result.state], result.error_message if result.state == "FAILURE" else None,
                                result.consume_subscription_state)
        meta = Metadata(actor=principal.user_id)
        appends = [StreamAppend(f"action-{action_id}", row.version, [NewEvent(event, meta)])]
        if principal.scope == f"action:{action_id}":  # the launch token's work is done
            appends.append(StreamAppend(f"api_key-{principal.key}", ExpectedVersion.ANY,
                                        [NewEvent(ApiKeyRevoked(), meta)]))
        service.store.append(*appends)

    retry_on_conflict(attempt, what=f"action {action_id}")
