"""The one composition root: builds dart's object graph from settings (the store, its inline read models,
secrets, ECS task definitions), the consumers every process runs, the embedded mode's worker threads, and
the production processes (``dart relay``, ``dart worker <name>``). Nothing connects at import time."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import falcon

from events.database import open_store
from events.store import EventStore
from events.streams import default_registry
from events.subscription import CatchUpSubscription
from projections.base import Projection
from projections.catalog import all_projections
from projections.runner import AsyncProjectionRunner
from services.adapters.action_logs import ActionLogs
from services.adapters.aws import AwsClients
from services.adapters.ecs import EcsTaskDefinitions
from services.adapters.local_engines import local_launcher_from_settings
from services.adapters.s3_sample import dataset_guesser
from services.adapters.secrets import LocalSecrets
from services.adapters.secrets_manager import SecretsManagerSecrets
from services.api.app import create_app
from services.api.listing import SchemaCache
from services.commands.auth import Authenticator, verified_keys
from services.commands.context import Orchestration
from services.commands.entities import EntityService
from services.commands.generation import SubscriptionWorker
from services.commands.launcher import Launcher
from services.commands.orchestrator import Orchestrator
from services.commands.scheduler import Scheduler, offset_clock
from services.commands.secret_args import Secrets
from services.delivery import routes_for, run_until_signalled, transport_options_for
from services.delivery.inbox import InboxConsumer
from services.delivery.kombu_consumer import ConsumerLoop, KombuConsumer
from services.delivery.relay import Relay
from services.delivery.s3_notifications import S3NotificationReader, notification_connection
from services.runtime.email import notifier_from_settings
from services.runtime.engine_workers import production_launcher
from services.runtime.home import prepare_home
from services.runtime.logs import add_log_file
from services.runtime.settings import Settings, SettingsError
from services.runtime.telemetry import configure_tracing

log = logging.getLogger("dart.process")
WORKERS = ("orchestrator", "launcher", "notifier", "inbox", "scheduler", "subscriptions")


@dataclass
class Container:
    settings: Settings
    store: EventStore
    projections: list[Projection]
    secrets: Secrets
    ecs: EcsTaskDefinitions | None = None
    aws: AwsClients | None = None

    @property
    def s3_datastores_root(self) -> str:
        return self.settings.s3_datastores_root

    @property
    def max_task_memory_mb(self) -> int:
        return self.settings.max_task_memory_mb


def build(settings: Settings, migrate: bool = True) -> Container:
    configure_tracing(settings)  # spans exported over OTLP when an endpoint is configured (issue 15)
    prepare_home(settings)  # 0700, and the SQLite file 0600 before it is opened
    store = open_store(settings.effective_database_url, default_registry(), migrate=migrate)
    projections = all_projections()
    for projection in projections:
        if projection.mode == "inline":
            store.add_inline_projection(projection)
    ecs = (
        EcsTaskDefinitions(settings.ecs_cluster, settings.aws_region, settings.aws_endpoint_url)
        if settings.ecs_cluster else None
    )
    aws = AwsClients(settings.aws_region, settings.aws_endpoint_url or None)
    return Container(settings, store, projections, secrets_store(settings), ecs, aws)


def secrets_store(settings: Settings) -> Secrets:
    """AWS Secrets Manager in production (DART_SECRETS=aws, the default with DART_ECS_CLUSTER), else the
    encrypted file in DART_HOME."""
    if settings.secrets_store == "aws":
        return SecretsManagerSecrets(settings.aws_region, settings.aws_endpoint_url or None)
    return LocalSecrets(settings.home)


def api_app(container: Container) -> falcon.App:
    """The REST API over the container's store (``dart up``, and each gunicorn worker of ``dart api``)."""
    settings, store = container.settings, container.store
    return create_app(
        entities=EntityService(store, container),  # the container is the kinds' EntityContext
        authenticate=Authenticator(store, verified_keys()),  # this app's cache of verified keys: 2 s each
        orchestration=Orchestration(store, settings.s3_datastores_root, offset_clock(settings.clock_offset_seconds)),
        projections=container.projections,
        secrets=container.secrets,
        guess_dataset=dataset_guesser(settings.aws_endpoint_url, settings.aws_region),
        schema_cache=SchemaCache(),
        max_body_bytes=settings.max_body_bytes,
        logs=action_logs(container),
    )


def action_logs(container: Container) -> ActionLogs:
    """Where engines' output is kept and read from (services/adapters/action_logs.py)."""
    settings = container.settings
    return ActionLogs(settings.home, container.aws, settings.uploads_action_logs)


class Workers:
    """The orchestrator and launcher of the embedded mode, each fed by a catch-up subscription, and the kombu
    consumers (the inbox, the S3 notification reader) that run beside them."""

    def __init__(self, threads: list[tuple[Any, Any]], launcher: Any, consumers: list[ConsumerLoop]) -> None:
        self.threads = threads
        self.launcher = launcher
        self.consumers = consumers

    def stop(self, timeout: float = 5.0) -> None:
        for _, stop in self.threads:
            stop.set()
        for consumer in self.consumers:
            consumer.stop()
        self.launcher.stop()
        for thread, _ in self.threads:
            thread.join(timeout)


def start_workers(container: Container, api_url: str) -> Workers:
    """The embedded mode's workers, as threads of this process: orchestrator, launcher (local processes, or
    ECS when DART_ECS_CLUSTER is set), notifier, subscriptions (and its S3 notification reader when
    DART_S3_NOTIFICATION_QUEUE is set), scheduler, and the inbox of external events when DART_BROKER_URL
    names a broker (the workers themselves still follow the log, not the broker)."""
    settings = container.settings
    orch = Orchestration(container.store, settings.s3_datastores_root)
    launcher: Launcher
    if settings.ecs_cluster:
        launcher = production_launcher(orch, api_url, settings)  # ECS tasks, or warm engine workers
    else:
        launcher = local_launcher_from_settings(orch, api_url, settings, action_logs(container))
        # Local engines start in this process: the orchestrator takes their slots in its own queueing appends
        # and starts them at once (an ECS launcher keeps its own slot-taking: RunTask may refuse for capacity).
        orch.launcher = launcher
    threads = []
    workers = (Orchestrator(orch), launcher, notifier_from_settings(container.store, settings),
               subscription_worker(orch, container))
    for consumer in workers:
        subscription = CatchUpSubscription(container.store, consumer.name, consumer.handle, types=consumer.types,
                                           batch_size=100, poll_interval=settings.poll_interval,
                                           checkpoint_interval=0.5)
        threads.append(subscription.start())
    threads.append(launcher.start_periodic(settings.poll_interval))  # orphans, stale PENDING, held retries
    threads.append(workers[3].start_periodic(max(settings.poll_interval, 5.0)))  # stalled generations
    kombu_consumers: list[ConsumerLoop] = []
    reader = notification_reader(orch, settings)
    if reader is not None:
        reader.start()
        kombu_consumers.append(reader)
    threads.append(Scheduler(orch, offset_clock(settings.clock_offset_seconds)).start(settings.scheduler_interval,
                                                                                      settings.poll_interval))
    if settings.broker_url:
        url, options = broker_of(settings)
        inbox = InboxConsumer(orch, url, options, settings.queue_prefix)
        inbox.start()
        kombu_consumers.append(inbox)
    return Workers(threads, launcher, kombu_consumers)


def broker_of(settings: Settings) -> tuple[str, dict[str, Any]]:
    if not settings.broker_url:
        raise SettingsError("setting broker_url (DART_BROKER_URL) is required: sqs://key:secret@host:port or amqp://...")
    return settings.broker_url, transport_options_for(settings.broker_url, region=settings.aws_region,
                                                      visibility_timeout=settings.sqs_visibility_timeout)


def _api_url(settings: Settings) -> str:
    return settings.api_url or f"http://{settings.host}:{settings.port}/api/1"


def consumers(container: Container) -> dict[str, Any]:
    """Every event consumer, by group name, as the relay routes to them."""
    settings = container.settings
    orch = Orchestration(container.store, settings.s3_datastores_root)
    launcher = (
        production_launcher(orch, _api_url(settings), settings) if settings.ecs_cluster
        else local_launcher_from_settings(orch, _api_url(settings), settings, action_logs(container))
    )
    return {"orchestrator": Orchestrator(orch), "launcher": launcher,
            "notifier": notifier_from_settings(container.store, settings),
            "subscriptions": subscription_worker(orch, container)}


def subscription_worker(orch: Orchestration, container: Container) -> SubscriptionWorker:
    aws = container.aws or AwsClients(container.settings.aws_region, container.settings.aws_endpoint_url or None)
    return SubscriptionWorker(orch, aws.s3_listing(), container.settings.subscription_page_size)


def notification_reader(orch: Orchestration, settings: Settings) -> S3NotificationReader | None:
    """The S3 notification reader (kombu over SQS at the AWS endpoint, whatever DART_BROKER_URL is), when
    DART_S3_NOTIFICATION_QUEUE names a queue."""
    if not settings.s3_notification_queue:
        return None
    url, options = notification_connection(settings.aws_endpoint_url or None, settings.aws_region,
                                           settings.s3_notification_queue)
    return S3NotificationReader(orch, url, options, settings.s3_notification_queue)


def run_relay(settings: Settings) -> int:
    container = build(settings)  # (prepares DART_HOME, 0700, before its log folder)
    add_log_file(settings.home / "logs", "relay")
    url, options = broker_of(settings)
    try:
        outside = json.loads(settings.outside_readers) if settings.outside_readers else {}
    except ValueError as exc:
        raise SettingsError(f"setting outside_readers (DART_OUTSIDE_READERS) is not JSON: {exc}") from exc
    relay = Relay(container.store, url, options, routes_for(consumers(container).values()), outside,
                  settings.queue_prefix, poll_interval=settings.relay_poll_interval)
    log.info("relay publishing to %s with prefix %s", url.split("@")[-1], settings.queue_prefix)
    # The async projections (statistics: /metrics reads them) follow the log beside the relay, which runs once
    # per database in production as they should (a second runner is harmless: checkpoints are compare-and-set).
    projections = AsyncProjectionRunner(container.store, container.projections)
    projections.start()
    try:
        run_until_signalled(relay.run)
    finally:
        projections.stop()
    return 0


def run_worker(settings: Settings, name: str) -> int:
    container = build(settings, migrate=False)
    log_file = add_log_file(settings.home / "logs", f"worker-{name}")  # shared by every process of that name
    log.info("worker %s starting; log file %s", name, log_file)
    orch = Orchestration(container.store, settings.s3_datastores_root)
    if name == "scheduler":
        thread, stop = Scheduler(orch, offset_clock(settings.clock_offset_seconds)).start(settings.scheduler_interval,
                                                                                          settings.poll_interval)

        def until_signalled(signalled: threading.Event) -> None:
            signalled.wait()
            stop.set()
            thread.join(10)

        run_until_signalled(until_signalled)
        return 0
    url, options = broker_of(settings)
    if name == "inbox":
        run_until_signalled(InboxConsumer(orch, url, options, settings.queue_prefix))
        return 0
    consumer = consumers(container)[name]
    periodic = consumer.start_periodic(settings.poll_interval) if name == "launcher" else None
    reader = None
    if name == "subscriptions":
        periodic = consumer.start_periodic(max(settings.poll_interval, 5.0))  # stalled generations
        reader = notification_reader(orch, settings)
        if reader is not None:
            reader.start()
    try:
        run_until_signalled(KombuConsumer(consumer, container.store, url, options, settings.queue_prefix))
    finally:
        if periodic is not None:
            periodic[1].set()
        if reader is not None:
            reader.stop()
    return 0
