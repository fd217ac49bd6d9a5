"""The shapes the API answers with: an entity's envelope around its typed ``data`` (services/client/models.py),
an event of the log, an API key. ``from_json`` keeps what a newer server adds in ``extra`` instead of failing."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar


@dataclass
class EntityData:
    """Base of the generated data classes; ``extra`` holds fields this client does not know."""

    entity: ClassVar[str] = ""
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in raw.items() if k in names}
        return cls(**known, extra={k: v for k, v in raw.items() if k not in names})

    def to_json(self, *, nulls: bool = False) -> dict[str, Any]:
        """The data as the API takes it; fields left None are left out unless ``nulls``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out if nulls else {k: v for k, v in out.items() if v is not None}


D = TypeVar("D", bound=EntityData)


@dataclass
class Entity(Generic[D]):
    """``{id, version_id, created, updated, data}``; ``version_id`` is the entity stream's version."""

    id: str
    version_id: int
    data: D
    created: str | None = None
    updated: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], data_class: type[D]) -> Entity[D]:
        return cls(id=str(raw["id"]), version_id=int(raw.get("version_id") or 0),
                   data=data_class.from_json(raw.get("data") or {}), created=raw.get("created"),
                   updated=raw.get("updated"))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "version_id": self.version_id, "created": self.created, "updated": self.updated,
                "data": self.data.to_json(nulls=True)}


@dataclass(frozen=True)
class LoggedEvent:
    """One event of the log (``GET /log``, ``/log/stream``, an entity's history)."""

    event_id: str
    stream_id: str
    stream_version: int
    global_position: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LoggedEvent:
        values: dict[str, Any] = {f.name: raw.get(f.name) for f in dataclasses.fields(cls)}
        return cls(**values)


@dataclass(frozen=True)
class ApiKey:
    """An API key as the API lists it; ``secret`` only in the answer that created it."""

    key: str
    user_id: str
    role: str
    expires: str | None = None
    created: str | None = None
    action_id: str | None = None
    secret: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ApiKey:
        values: dict[str, Any] = {f.name: raw.get(f.name) for f in dataclasses.fields(cls)}
        return cls(**values)

    @property
    def token(self) -> str:
        """``key:secret`` (only for a key just created)."""
        return f"{self.key}:{self.secret}"
