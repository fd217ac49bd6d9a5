"""The one place that builds dart's object graph from settings; nothing connects at import time."""

from __future__ import annotations

from dataclasses import dataclass

from events.database import open_store
from events.store import EventStore
from events.streams import default_registry
from projections.base import Projection
from projections.catalog import all_projections
from services.ecs import EcsTaskDefinitions
from services.secrets import LocalSecrets
from services.settings import Settings


@dataclass
class Container:
    settings: Settings
    store: EventStore
    projections: list[Projection]
    secrets: LocalSecrets
    ecs: EcsTaskDefinitions | None = None

    @property
    def s3_datastores_root(self) -> str:
        return self.settings.s3_datastores_root

    @property
    def max_task_memory_mb(self) -> int:
        return self.settings.max_task_memory_mb


def build(settings: Settings, migrate: bool = True) -> Container:
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.effective_database_url, default_registry(), migrate=migrate)
    projections = all_projections()
    for projection in projections:
        if projection.mode == "inline":
            store.add_inline_projection(projection)
    ecs = (
        EcsTaskDefinitions(settings.ecs_cluster, settings.aws_region, settings.aws_endpoint_url)
        if settings.ecs_cluster else None
    )
    return Container(settings, store, projections, LocalSecrets(settings.home), ecs)
