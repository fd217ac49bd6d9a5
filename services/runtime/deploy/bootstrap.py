"""The migrate task of a deployed environment (``python -m services.runtime.deploy.bootstrap``), run once by
``dart deploy`` before the processes of a new image start: apply the migrations, then register (or update)
every built-in engine so that its ``ecs_task_definition_arn`` names the stack's task family for it. The
family, not a revision: ECS runs the family's newest ACTIVE revision, so an engine stays runnable when a later
deploy replaces its task definition. Registration here never registers a task definition (the stack owns
them); it checks that the family exists and describes it in the engine's data."""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

import boto3
from botocore.exceptions import ClientError

from engines.catalog import BUILT_IN_ENGINES, BuiltInEngine
from services.adapters.ecs import EcsTaskDefinitions
from services.commands.entities import EntityService
from services.runtime.builtin_engines import register_builtin_engines
from services.runtime.composition import build
from services.runtime.logs import configure_logging
from services.runtime.settings import Settings, SettingsError, load_settings

log = logging.getLogger("dart.deploy.bootstrap")


class StackTaskDefinitions(EcsTaskDefinitions):
    """The engines' task definitions as the stack made them: ``register`` answers the family after checking it
    exists; ``deregister`` leaves the stack's definitions alone."""

    def __init__(self, cluster: str, client: Any) -> None:
        self.cluster = cluster
        self._client = client

    def describe(self, family: str) -> dict[str, Any]:
        try:
            found = self._client.describe_task_definition(taskDefinition=family)["taskDefinition"]
        except ClientError as exc:
            raise ValueError(f"task family {family} is not in the stack: {exc}") from exc
        return {"family": family, "containerDefinitions": [
            {"name": c["name"], "image": c["image"], "cpu": int(c.get("cpu") or found.get("cpu") or 0),
             "memory": int(c.get("memory") or found.get("memory") or 0),
             # where the API reads an action's output (services/adapters/action_logs.awslogs_stream)
             **({"logConfiguration": c["logConfiguration"]} if c.get("logConfiguration") else {})}
            for c in found.get("containerDefinitions") or []]}

    def register(self, definition: dict[str, Any]) -> str:
        family = str(definition["family"])
        self.describe(family)
        return family

    def deregister(self, arn: str) -> None:
        log.info("task definition %s belongs to the stack: not deregistered", arn)


def deployed_engines(settings: Settings, definitions: StackTaskDefinitions) -> tuple[BuiltInEngine, ...]:
    """The built-in engines with their registration bodies naming the stack's task definitions."""

    def body_of(engine: BuiltInEngine) -> Any:
        def registration() -> dict[str, Any]:
            body = engine.registration()
            body["ecs_task_definition"] = definitions.describe(f"dart-{settings.env_name}-{engine.name}")
            return body

        return registration

    return tuple(dataclasses.replace(engine, registration=body_of(engine)) for engine in BUILT_IN_ENGINES)


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"dart migrate: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    container = build(settings)  # applies the migrations
    log.info("migrations applied")
    client = boto3.client("ecs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url or None)
    definitions = StackTaskDefinitions(settings.ecs_cluster, client)
    container = dataclasses.replace(container, ecs=definitions)
    outcome = register_builtin_engines(EntityService(container.store, container),
                                      deployed_engines(settings, definitions))
    container.store.close()
    for name, result in sorted(outcome.items()):
        log.info("built-in engine %s: %s", name, result)
    failed = sorted(name for name, result in outcome.items() if result == "failed")
    if failed:
        print(f"dart migrate: built-in engines not registered: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
