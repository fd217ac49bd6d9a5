"""One row of the route table (services/api/routes.py), and the collaborators its resources are built from.
Kept apart from the table so the OpenAPI document can read rows without importing the resources."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from events.store import EventStore
from projections.base import Projection
from services.api.listing import SchemaCache
from services.api.metrics import RequestMetrics
from services.commands.context import Orchestration
from services.commands.engine_protocol import SecretReader
from services.commands.entities import EntityService
from services.domain.roles import OPEN, Access

PREFIX = "/api/1"
# (s3_path, max_lines, user_id) -> a DatasetData guessed from S3, ready to POST (services/adapters/s3_sample.py)
GuessDataset = Callable[[str | None, int, str], dict[str, Any]]


class LogReader(Protocol):
    """An action's log from a byte offset: an object with text, offset, next_offset and source."""

    def read(self, action: dict[str, Any], engine: dict[str, Any] | None, datastore: dict[str, Any] | None,
             offset: int = 0) -> Any: ...


@dataclass(frozen=True)
class Collaborators:
    """Everything a resource may need: what the composition root hands ``create_app``, plus the app's own
    request counters (shared by the counting middleware and ``/metrics``)."""

    entities: EntityService
    orchestration: Orchestration  # the manual trigger decides a run start inside the request
    projections: Sequence[Projection]  # the async ones' lag, for /ready and /metrics
    secrets: SecretReader | None  # a datastore's secret args, handed to its engine at check-out
    guess_dataset: GuessDataset
    schema_cache: SchemaCache
    counters: RequestMetrics
    logs: LogReader | None = None  # engines' output per action (services/adapters/action_logs.py)

    @property
    def store(self) -> EventStore:
        return self.entities.store


@dataclass(frozen=True)
class Route:
    """One path: how to build its resource, what the OpenAPI document says of each method, and who may call
    each method (``access``: required, one rule per method, so a new route cannot go without a role)."""

    path: str  # below ``prefix``
    build: Callable[[Collaborators], Any]
    methods: dict[str, str]  # method -> summary
    entity: str | None = None  # the entity in request and response bodies
    # item | list | many (a nested create taking one or an array) | ok | log | history | schema | checkout
    # | probe (health and readiness: documented without security)
    shape: str = "item"
    # The GET query parameters QueryCheck allows; None: the route takes any (the open probes and documents)
    query: tuple[str, ...] | None = ()
    prefix: str = PREFIX
    documented: bool = True  # in the OpenAPI document
    access: dict[str, Access] = field(kw_only=True)  # method -> the role it needs (services/domain/roles.py)

    def __post_init__(self) -> None:
        if set(self.access) != set(self.methods):
            raise ValueError(f"route {self.path}: access names methods {sorted(self.access)}, "
                             f"the route has {sorted(self.methods)}")

    @property
    def open(self) -> bool:
        """Answered without a key."""
        return all(rule.role == OPEN for rule in self.access.values())

    @property
    def full_path(self) -> str:
        return self.prefix + self.path
