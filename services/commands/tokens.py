"""An action's launch token (an API key of scope ``action:<id>``) works only while its action is PENDING or
RUNNING: checked on every request and again where a write decides, so no write is accepted once the action
has ended (check-in, failure, lost engine, deletion), whatever a verified-keys cache still holds."""

from __future__ import annotations

from projections.reads import EntityReader
from services.commands.auth import Principal
from services.domain.errors import NotAuthenticated
from services.domain.roles import ENGINE

TOKEN_STATES = frozenset({"PENDING", "RUNNING"})


def token_action(principal: Principal) -> str | None:
    """The action a launch token belongs to; None for any other key."""
    if principal.role != ENGINE:
        return None
    return principal.scope.split(":", 1)[1]


def refuse_ended_token(reader: EntityReader, principal: Principal) -> dict | None:
    """Raise NotAuthenticated if ``principal`` is a launch token whose action has ended; returns that
    action's data (None for a key that is not a launch token)."""
    action_id = token_action(principal)
    if action_id is None:
        return None
    row = reader.row("action", action_id)
    state = None if row is None else row.data.get("state")
    if row is None or state not in TOKEN_STATES:
        raise NotAuthenticated(f"this launch token's action {action_id} is {state or 'gone'}: the token was "
                               f"revoked when its action ended")
    return dict(row.data)
