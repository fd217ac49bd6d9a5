"""The production processes (design.md §4): ``dart relay`` and ``dart worker <name>``, each one process,
fed through the broker (SQS or AMQP) instead of the embedded catch-up subscriptions."""

from __future__ import annotations

import json
import logging
from typing import Any

from services.settings import Settings, SettingsError
from services.wiring import Container, build

log = logging.getLogger("dart.process")
WORKERS = ("orchestrator", "launcher", "notifier", "inbox", "scheduler", "subscriptions")


def broker_of(settings: Settings) -> tuple[str, dict[str, Any]]:
    from services.delivery import transport_options_for

    if not settings.broker_url:
        raise SettingsError("setting broker_url (DART_BROKER_URL) is required: sqs://key:secret@host:port or amqp://...")
    return settings.broker_url, transport_options_for(settings.broker_url, region=settings.aws_region,
                                                      visibility_timeout=settings.sqs_visibility_timeout)


def _api_url(settings: Settings) -> str:
    return settings.api_url or f"http://{settings.host}:{settings.port}/api/1"


def consumers(container: Container) -> dict[str, Any]:
    """Every event consumer, by group name, as the relay routes to them."""
    from services.notifications import notifier_from_env
    from services.orchestration.context import Orchestration
    from services.orchestration.ecs_launcher import ecs_launcher_from_settings
    from services.orchestration.local_launcher import LocalLauncher, local_engine_commands
    from services.orchestration.orchestrator import Orchestrator

    settings = container.settings
    orch = Orchestration(container.store, settings.s3_datastores_root)
    launcher = (
        ecs_launcher_from_settings(orch, _api_url(settings), settings) if settings.ecs_cluster
        else LocalLauncher(orch, _api_url(settings), local_engine_commands(settings.local_engines),
                           settings.stale_pending_seconds)
    )
    return {"orchestrator": Orchestrator(orch), "launcher": launcher, "notifier": notifier_from_env(container.store),
            "subscriptions": subscription_worker(orch, settings)}


def subscription_worker(orch: Any, settings: Settings) -> Any:
    from services.subscriptions.generation import SubscriptionWorker, s3_client

    return SubscriptionWorker(orch, s3_client(settings), settings.subscription_page_size)


def notification_poller(orch: Any, settings: Settings) -> Any | None:
    """The S3 notification reader, when DART_S3_NOTIFICATION_QUEUE names a queue."""
    if not settings.s3_notification_queue:
        return None
    from services.subscriptions.generation import NotificationPoller, sqs_client

    return NotificationPoller(orch, sqs_client(settings), settings.s3_notification_queue)


def run_relay(settings: Settings) -> int:
    from events.relay import Relay
    from services.delivery import routes_for, run_until_signalled

    container = build(settings)
    url, options = broker_of(settings)
    try:
        outside = json.loads(settings.outside_readers) if settings.outside_readers else {}
    except ValueError as exc:
        raise SettingsError(f"setting outside_readers (DART_OUTSIDE_READERS) is not JSON: {exc}") from exc
    relay = Relay(container.store, url, options, routes_for(consumers(container).values()), outside,
                  settings.queue_prefix, poll_interval=settings.relay_poll_interval)
    log.info("relay publishing to %s with prefix %s", url.split("@")[-1], settings.queue_prefix)
    run_until_signalled(relay.run)
    return 0


def run_worker(settings: Settings, name: str) -> int:
    from services.delivery import run_until_signalled
    from services.delivery.inbox import InboxConsumer
    from services.delivery.kombu_consumer import KombuConsumer
    from services.orchestration.context import Orchestration
    from services.orchestration.scheduler import Scheduler, offset_clock

    container = build(settings, migrate=False)
    orch = Orchestration(container.store, settings.s3_datastores_root)
    if name == "scheduler":
        thread, stop = Scheduler(orch, offset_clock(settings.clock_offset_seconds)).start(settings.scheduler_interval)
        run_until_signalled(lambda signalled: (signalled.wait(), stop.set(), thread.join(10)))
        return 0
    url, options = broker_of(settings)
    if name == "inbox":
        run_until_signalled(InboxConsumer(orch, url, options, settings.queue_prefix))
        return 0
    consumer = consumers(container)[name]
    periodic = consumer.start_periodic(settings.poll_interval) if name == "launcher" else None
    poller = None
    if name == "subscriptions":
        periodic = consumer.start_periodic(max(settings.poll_interval, 5.0))  # stalled generations
        found = notification_poller(orch, settings)
        poller = found.start() if found is not None else None
    try:
        run_until_signalled(KombuConsumer(consumer, container.store, url, options, settings.queue_prefix))
    finally:
        for running in (periodic, poller):
            if running is not None:
                running[1].set()
    return 0
