"""The plain shape of what an orchestration rule is given: an entity as its read model holds it (id, stream
version, data). Read-model rows fit it as they are; tests build ``Entity`` values by hand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class Row(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Entity:
    id: str
    version: int
    data: dict[str, Any] = field(default_factory=dict)
