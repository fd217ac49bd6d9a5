"""Who may do what: the four roles in order, the access rule each method of a route carries (the route table
in services/api/routes.py), the one change an operator may make, and what of an API key is never served."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

VIEWER, OPERATOR, EDITOR, ADMIN = "viewer", "operator", "editor", "admin"
ROLES = (VIEWER, OPERATOR, EDITOR, ADMIN)  # each role may do everything the ones before it may
ENGINE = "engine"  # pseudo-role: an action's launch token (scope ``action:<id>``)
OPEN = "open"  # pseudo-role: no key at all (probes, metrics, the OpenAPI document)
# Keys made before roles existed, without --admin ("user" keys): they could create, change and delete every
# entity, so they are editors; admin is the only power they never had in practice (keys, engines, the log).
LEGACY_USER = "user"
# What an operator may change on an entity (activate, deactivate); every other change needs an editor.
OPERATOR_FIELDS = frozenset({"state"})
# Fields of an API key's events and read model never served to anyone (they allow offline secret guessing).
KEY_HIDDEN = frozenset({"salt", "secret_hash"})
KEY_EVENT_TYPES = frozenset({"ApiKeyCreated", "ApiKeyUpdated", "ApiKeyRevoked"})


def rank(role: str | None) -> int:
    """0 for no role; the launch token reads like a viewer."""
    if role == ENGINE:
        return 1
    return ROLES.index(role) + 1 if role in ROLES else 0


def role_of_scope(scope: str) -> str | None:
    """A stored key's scope as a role: a role name, ``user`` (editor), ``action:<id>`` (engine); else None."""
    if scope.startswith("action:"):
        return ENGINE
    if scope == LEGACY_USER:
        return EDITOR
    return scope if scope in ROLES else None


def parse_role(value: Any) -> str:
    if value not in ROLES:
        raise ValueError(f"role: must be one of {', '.join(ROLES)}, not {value!r}")
    return str(value)


@dataclass(frozen=True)
class Access:
    """One method of one route: the least role that may call it, whether an action's launch token may too
    (the API then holds the token to its own action), and a lesser role allowed when the request changes
    nothing but ``state`` (the entity update checks the change: ``refused_change``)."""

    role: str
    engine: bool = False
    state_role: str | None = None

    def admits(self, role: str | None) -> bool:
        """May a key with ``role`` get past the route's gate?"""
        if self.role == OPEN:
            return True
        if role == ENGINE:
            return self.engine or self.role == VIEWER
        least = self.state_role or self.role
        return rank(role) >= rank(least)

    def describe(self) -> str:
        """The role needed, as the OpenAPI document and a 403 name it."""
        if self.role == OPEN:
            return "none (no key needed)"
        text = self.role
        if self.state_role:
            text += f" ({self.state_role} to change only state)"
        if self.engine:
            text += " or the action's launch token"
        return text


VIEW = Access(VIEWER)
OPERATE = Access(OPERATOR)
EDIT = Access(EDITOR)
ADMINISTER = Access(ADMIN)
ACTIVATE = Access(EDITOR, state_role=OPERATOR)  # a workflow's or trigger's PUT/PATCH
EDIT_OR_ENGINE = Access(EDITOR, engine=True)  # an engine's progress on its action and datastore
ENGINE_ONLY = Access(ADMIN, engine=True)  # the engine protocol: the action's launch token, or an admin
NO_KEY = Access(OPEN)


def refused_change(role: str | None, category: str, changed: Collection[str]) -> str | None:
    """Why ``role`` may not make this change to an entity, or None when it may: an operator changes only
    ``state`` (activation); anyone who got past the route's gate with an editor's rank changes anything."""
    if role == OPERATOR:
        others = sorted(set(changed) - OPERATOR_FIELDS)
        if others:
            return (f"{', '.join(others)}: role {OPERATOR} may change only a {category}'s state; "
                    f"this change needs role {EDITOR}")
    return None


def redact_key_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event envelope (``RecordedEvent.as_dict()``) as it may be served: an API key event without the
    salt and hash of its secret; any other event unchanged."""
    if event.get("type") not in KEY_EVENT_TYPES:
        return event
    data = {name: redact_key_data(value) if isinstance(value, dict) else value
            for name, value in (event.get("data") or {}).items()}
    return {**event, "data": data}


def redact_key_data(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in KEY_HIDDEN}


def parse_expires(value: Any, now: datetime) -> str | None:
    """An optional expiry: an ISO 8601 time with offset, in the future; stored as UTC ISO text."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"expires: {value!r} is not an ISO 8601 time with offset") from exc
    if at.tzinfo is None:
        raise ValueError(f"expires: {value!r} needs a UTC offset, e.g. {value}+00:00")
    try:
        utc = at.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"expires: {value!r} is out of range") from exc
    if utc <= now:
        raise ValueError(f"expires: {value!r} is not in the future")
    return utc.isoformat()


def expired(expires: str | None, now: datetime) -> bool:
    return expires is not None and datetime.fromisoformat(expires) <= now
