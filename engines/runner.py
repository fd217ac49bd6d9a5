"""What every built-in data engine shares around the SDK: dispatch by action type with one-line failures (the
traceback goes to the engine's log, stderr), the ECS task definition, and the ``python -m`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engines.sdk import (
    ActionContext,
    ActionFailure,
    DartApiError,
    DartClient,
    EngineEnvironment,
    MissingEnvironment,
    run_action,
)

Handler = Callable[[ActionContext, DartClient], Any]
log = logging.getLogger("dart.engine")


def one_line(exc: BaseException) -> str:
    """The exception's first line, or its class when it has no text."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def dispatch(engine_name: str, handlers: Mapping[str, Handler]) -> Handler:
    """An SDK handler that runs the action type's handler; any failure becomes ``<action type>: <cause>``."""

    def handle(context: ActionContext, client: DartClient) -> None:
        action_type = context.action_type_name
        handler = handlers.get(action_type)
        if handler is None:
            raise ActionFailure(f"{engine_name} does not support action type {action_type!r}")
        try:
            handler(context, client)
        except ActionFailure as exc:
            raise ActionFailure(f"{action_type}: {one_line(exc)}") from exc
        except Exception as exc:
            log.exception("%s failed", action_type)
            raise ActionFailure(f"{action_type}: {one_line(exc)}") from exc

    return handle


def awslogs(name: str, env_name: str, region: str) -> dict[str, Any]:
    """An engine container's log configuration: the awslogs driver into CloudWatch Logs, group
    /dart/<env>/engines, stream <engine name>/<container>/<task id> (what GET /action/{id}/logs reads)."""
    return {"logDriver": "awslogs", "options": {"awslogs-group": f"/dart/{env_name}/engines",
                                                "awslogs-region": region, "awslogs-stream-prefix": name,
                                                "awslogs-create-group": "true"}}


def ecs_task_definition(name: str, role: str, env_name: str = "local", image: str | None = None,
                        dart_config: str | None = None, region: str = "us-east-1") -> dict[str, Any]:
    """One small container as every built-in engine of the original declared (reference §10 item 1)."""
    environment = [{"name": "DART_ROLE", "value": f"worker:{role}"}]
    if dart_config is not None:
        environment.append({"name": "DART_CONFIG", "value": dart_config})
    environment.append({"name": "AWS_DEFAULT_REGION", "value": region})
    return {
        "family": f"dart-{env_name}-{name}",
        "containerDefinitions": [{
            "name": f"dart-{name}", "cpu": 64, "memory": 256, "image": image or f"dart/{name}:latest",
            "logConfiguration": awslogs(name, env_name, region), "environment": environment,
            "mountPoints": [{"containerPath": "/mnt/ecs_agent_data", "sourceVolume": "ecs-agent-data",
                             "readOnly": True}],
        }],
        "volumes": [{"host": {"sourcePath": "/var/lib/ecs/data"}, "name": "ecs-agent-data"}],
    }


def run(handler: Handler, env: Mapping[str, str] | None = None) -> int:
    """Run the one action named by the environment; returns the process exit code (see engines.sdk)."""
    return run_action(handler, EngineEnvironment.from_env(env))


def main(prog: str, engine_name: str, handler: Handler, registration: Callable[[], dict[str, Any]],
         argv: Sequence[str] | None = None) -> int:
    """``python -m engines.<x>`` runs the action of DART_ACTION_ID; ``... register`` registers the engine."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog=prog, description=f"the {engine_name}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the action named by DART_ACTION_ID (the default)")
    reg = commands.add_parser("register", help=f"register the {engine_name} (or update its registration)")
    reg.add_argument("--api-url", default=os.environ.get("DART_API_URL"),
                     help="e.g. http://127.0.0.1:5000/api/1 (default: $DART_API_URL)")
    reg.add_argument("--token", default=os.environ.get("DART_API_TOKEN"),
                     help="key:secret (default: $DART_API_TOKEN)")
    args = parser.parse_args(argv)
    if args.command == "register":
        if not args.api_url or not args.token:
            print("register needs --api-url and --token (or DART_API_URL and DART_API_TOKEN)", file=sys.stderr)
            return 2
        try:
            engine = DartClient(args.api_url, args.token).register_engine(registration())
        except (DartApiError, ValueError) as exc:
            print(f"could not register the {engine_name}: {exc}", file=sys.stderr)
            return 1
        print(engine["id"])
        return 0
    try:
        return run(handler)
    except (MissingEnvironment, ValueError) as exc:
        print(f"{engine_name}: {exc}", file=sys.stderr)
        return 2
