"""What every entity kind's rules share: the ports they use (the entity service, its context of effects outside
the log: secrets, ECS task definitions, the S3 root, the memory cap) and the base ``Kind``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from events.store import EventStore
from events.types import Metadata
from projections.reads import EntityReader
from services.commands.auth import Principal
from services.commands.secret_args import (
    Secrets,
    SecretWrite,
)
from services.domain import schemas
from services.domain.errors import BadRequest


class TaskDefinitions(Protocol):
    """ECS task definitions of engines (services/adapters/ecs.py)."""

    def register(self, definition: dict[str, Any]) -> str: ...

    def deregister(self, arn: str) -> None: ...


class EntityContext(Protocol):
    """What the kinds' rules need beyond the store, built by the composition root: the secrets store, the
    ECS task definitions (None without a cluster), where datastores' S3 folders go, the task memory cap."""

    @property
    def secrets(self) -> Secrets: ...

    @property
    def ecs(self) -> TaskDefinitions | None: ...

    @property
    def s3_datastores_root(self) -> str: ...

    @property
    def max_task_memory_mb(self) -> int: ...


class EntityService(Protocol):
    """What a kind's rules use of the entity service (services/commands/entities.py): the read models and
    the context of effects outside the log."""

    @property
    def store(self) -> EventStore: ...

    @property
    def reader(self) -> EntityReader: ...

    @property
    def context(self) -> EntityContext: ...


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _validate(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    try:
        return schemas.default_and_validate(data, schema)
    except schemas.SchemaValidationError as exc:
        raise BadRequest(str(exc)) from exc


class Kind:
    category = ""
    created: Any = None
    updated: Any = None
    deleted: Any = None
    editable: frozenset[str] | None = None  # None: a PUT replaces every field (engine, dataset)
    default_order = "desc"
    unique_name = False
    states_editable_from: frozenset[str] | None = None  # the states a PUT/PATCH is allowed in

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def prepare_batch(self, svc: EntityService, items: list[dict[str, Any]], who: Principal,
                      parent: Any, ids: list[str]) -> list[dict[str, Any]]:
        for data, entity_id in zip(items, ids):
            self.prepare(svc, data, who, parent, entity_id)
        return items

    def prepare(self, svc: EntityService, data: dict[str, Any], who: Principal, parent: Any,
                entity_id: str) -> None:
        data["user_id"] = who.user_id

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        data = _validate(data, self.schema(svc, data))
        if before is not None:
            self.check_transition(before, data)
        return data

    def validate_update(self, svc: EntityService, entity_id: str, data: dict[str, Any],
                        before: dict[str, Any]) -> dict[str, Any]:
        """``validate`` for an update of the entity ``entity_id``."""
        return self.validate(svc, data, before)

    def check_transition(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        if self.states_editable_from is not None and before.get("state") not in self.states_editable_from:
            allowed = " or ".join(sorted(self.states_editable_from))
            raise BadRequest(f"state: a {self.category} can be changed only while {allowed}, not {before.get('state')}")

    def merge(self, svc: EntityService, current: dict[str, Any], new: dict[str, Any],
              who: Principal) -> dict[str, Any]:
        known = set(self.schema(svc, current).get("properties", {}))  # non-editable fields come from current
        unknown = sorted(set(new) - known)
        if unknown:
            raise BadRequest(f"data: unknown field(s): {', '.join(unknown)}")
        if self.editable is None:
            merged = {k: v for k, v in new.items() if k != "user_id"}
            merged["user_id"] = current.get("user_id")
            return merged
        merged = dict(current)
        for name in self.editable:
            if name in new:
                merged[name] = new[name]
            else:
                merged.pop(name, None)
        return merged

    def cascade(self, svc: EntityService, entity_id: str) -> list[tuple[str, str]]:
        return []

    def check_links(self, svc: EntityService, entity_id: str, data: dict[str, Any]) -> None:
        """Checks of the entity (validated, as it would be saved, with its id) against others of its kind."""

    def hold_secrets(self, svc: EntityService, entity_id: str, before: dict[str, Any] | None,
                     data: dict[str, Any], meta: Metadata, cause: uuid.UUID | None,
                     ) -> tuple[dict[str, Any], SecretWrite | None]:
        """Validated ``data`` split into what the log records and the secret values the write holds back
        (their references go in the write's append; the values to the secrets store once it committed)."""
        return data, None

    # Effects outside the log (ECS), run around the append: ``before_*`` may change the data to record,
    # ``undo`` compensates when the append then fails, ``after_*`` runs once the append committed.
    def before_write(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
        return after

    def undo(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        return None

    def after_write(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        return None
