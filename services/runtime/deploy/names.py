"""The names one environment's resources get, shared by the template, ``dart deploy`` and the migrate task:
queue names are the settings' own (services.delivery.queues), task families the ones the built-in engines'
registration bodies name (``dart-<env>-<engine>``)."""

from __future__ import annotations

import re

from services.delivery.queues import QueueNames
from services.runtime.deploy.environment import Environment

# The consumer groups the relay routes events to (services.runtime.composition.consumers): each has a queue
# and a dead-letter queue. The inbox has both too; the scheduler reads no queue.
CONSUMER_GROUPS = ("orchestrator", "launcher", "notifier", "subscriptions")
MAX_RECEIVES = 5  # deliveries to workers that died holding the message, before SQS moves it to the dead queue


def logical(*parts: str) -> str:
    """A CloudFormation logical id from words: ``logical("worker", "no_op_engine")`` -> ``WorkerNoOpEngine``."""
    words = [w for part in parts for w in re.split(r"[^A-Za-z0-9]+", part) if w]
    return "".join(w[:1].upper() + w[1:] for w in words)


def queue_names(env: Environment) -> QueueNames:
    return QueueNames(env.queue_prefix)


def engine_family(env: Environment, engine: str) -> str:
    """The ECS task family of a built-in engine, as its registration body names it (engines/runner.py)."""
    return f"dart-{env.name}-{engine}"


def migrate_family(env: Environment) -> str:
    return f"dart-{env.name}-migrate"


def container_name(engine: str) -> str:
    """The engine's container, as its registration body names it (the launcher's overrides use it)."""
    return f"dart-{engine}"


def log_group(env: Environment, process: str) -> str:
    return f"/dart/{env.name}/{process}"


def secret_name(env: Environment, what: str) -> str:
    return f"dart/{env.name}/{what}"


DATASTORE_SECRETS = "dart-datastore-*"  # services.adapters.secrets_manager names them dart-datastore-<id>-<arg>
