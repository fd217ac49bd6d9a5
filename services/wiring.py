"""The one place that builds dart's object graph from settings; nothing connects at import time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


class Workers:
    """The orchestrator and launcher of the embedded mode, each fed by a catch-up subscription."""

    def __init__(self, threads: list[tuple[Any, Any]], launcher: Any, inbox: Any = None) -> None:
        self.threads = threads
        self.launcher = launcher
        self.inbox = inbox

    def stop(self, timeout: float = 5.0) -> None:
        for _, stop in self.threads:
            stop.set()
        if self.inbox is not None:
            self.inbox.stop()
        self.launcher.stop()
        for thread, _ in self.threads:
            thread.join(timeout)


def start_workers(container: Container, api_url: str) -> Workers:
    """The embedded mode's workers, as threads of this process: orchestrator, launcher (local processes, or
    ECS when DART_ECS_CLUSTER is set), notifier, subscriptions (and its S3 notification reader when
    DART_S3_NOTIFICATION_QUEUE is set), scheduler, and the inbox of external events when DART_BROKER_URL
    names a broker (the workers themselves still follow the log, not the broker)."""
    from events.subscription import CatchUpSubscription
    from services.notifications import notifier_from_env
    from services.orchestration.context import Orchestration
    from services.orchestration.ecs_launcher import ecs_launcher_from_settings
    from services.orchestration.launcher import Launcher
    from services.orchestration.local_launcher import LocalLauncher, local_engine_commands
    from services.orchestration.orchestrator import Orchestrator
    from services.orchestration.scheduler import Scheduler, offset_clock
    from services.processes import notification_poller, subscription_worker

    settings = container.settings
    orch = Orchestration(container.store, settings.s3_datastores_root)
    launcher: Launcher
    if settings.ecs_cluster:
        launcher = ecs_launcher_from_settings(orch, api_url, settings)
    else:
        launcher = LocalLauncher(orch, api_url, local_engine_commands(settings.local_engines),
                                 settings.stale_pending_seconds)
    threads = []
    workers = (Orchestrator(orch), launcher, notifier_from_env(container.store), subscription_worker(orch, settings))
    for consumer in workers:
        subscription = CatchUpSubscription(container.store, consumer.name, consumer.handle, types=consumer.types,
                                           batch_size=100, poll_interval=settings.poll_interval,
                                           checkpoint_interval=0.5)
        threads.append(subscription.start())
    threads.append(launcher.start_periodic(settings.poll_interval))  # orphans, stale PENDING, held retries
    threads.append(workers[3].start_periodic(max(settings.poll_interval, 5.0)))  # stalled generations
    poller = notification_poller(orch, settings)
    if poller is not None:
        threads.append(poller.start())
    threads.append(Scheduler(orch, offset_clock(settings.clock_offset_seconds)).start(settings.scheduler_interval))
    inbox = None
    if settings.broker_url:
        from services.delivery.inbox import InboxConsumer
        from services.processes import broker_of

        url, options = broker_of(settings)
        inbox = InboxConsumer(orch, url, options, settings.queue_prefix)
        inbox.start()
    return Workers(threads, launcher, inbox)
