"""The ``dart`` command: run the system (``up``), read the log (``events``), manage read models
(``projections``) and the schema (``db``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from projections.reads import parse_as_of
from services.domain.errors import BadRequest
from services.runtime.logs import configure_logging
from services.runtime.settings import Settings, SettingsError, load_settings

log = logging.getLogger("dart")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dart", description="dart: data mart a la carte, event-sourced")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run dart on this machine (embedded default: SQLite in DART_HOME)")
    up.add_argument("--port", type=int, help="API port (default 5000, or DART_PORT)")
    up.add_argument("--host", help="API address (default 127.0.0.1, or DART_HOST)")
    up.add_argument("--sandbox", action="store_true",
                    help="a local fake AWS (moto) with sample web logs and the example data chain (see `dart sandbox`)")
    up.add_argument("--force-sandbox", action="store_true", help="allow --sandbox with a PostgreSQL database URL")
    up.add_argument("--sandbox-lines", type=int, default=300_000, help="sample log lines a day (default 300,000)")

    events = sub.add_parser("events", help="read the event log").add_subparsers(dest="action", required=True)
    tail = events.add_parser("tail", help="print the newest events; -f keeps following the log")
    tail.add_argument("-n", "--last", type=int, default=20, help="how many recent events to start with")
    tail.add_argument("--after", type=int, help="start after this global position instead")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    tail.add_argument("--type", action="append", dest="types", help="only this event type (repeatable)")
    tail.add_argument("--stream", action="append", dest="streams", help="only this stream (repeatable)")
    tail.add_argument("--json", action="store_true", help="one JSON envelope per line")
    show = events.add_parser("show", help="one entity's history and its state")
    show.add_argument("stream", help="stream id, e.g. workflow-ABCDEF1234")
    show.add_argument("--as-of", help="a global position or an ISO 8601 time")
    show.add_argument("--json", action="store_true", help="one JSON envelope per line")

    projections = sub.add_parser("projections", help="read models").add_subparsers(dest="action", required=True)
    rebuild = projections.add_parser("rebuild", help="rebuild read models from the log and swap them in")
    rebuild.add_argument("names", nargs="*", help="projection names or prefixes (default: all)")
    projections.add_parser("status", help="positions and lag of every projection")

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create an API key for a user; prints key:secret once")
    create.add_argument("--user", required=True, help="the user's email; it becomes user_id and the actor")
    create.add_argument("--role", choices=["viewer", "operator", "editor", "admin"],
                        help="what the key may do (default: editor, what keys without --admin always could)")
    create.add_argument("--admin", action="store_true", help="the same as --role admin")
    create.add_argument("--expires", help="an ISO 8601 time with offset after which the key is refused")
    keys.add_parser("list", help="every live key: key, role, user, expiry (never a secret)")
    revoke = keys.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key", help="the key (the part before the colon)")

    api = sub.add_parser("api", help="serve the REST API under gunicorn (production)")
    api.add_argument("--port", type=int, help="port (default 5000, or DART_PORT)")
    api.add_argument("--host", help="address (default 127.0.0.1, or DART_HOST)")
    api.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    api.add_argument("--threads", type=int, default=8, help="threads per worker")

    sub.add_parser("relay", help="publish committed events to the broker's queues (production)")
    worker = sub.add_parser("worker", help="run one worker process fed by the broker (production)")
    worker.add_argument("name", choices=["orchestrator", "launcher", "notifier", "inbox", "scheduler", "subscriptions"])

    engine_worker = sub.add_parser("engine-worker", help="fork a built-in engine's actions from the broker "
                                                         "(production warm engine workers)")
    engine_worker.add_argument("--engine", required=True, help="the engine's name, e.g. no_op_engine")
    engine_worker.add_argument("--concurrency", type=int, default=8, help="engines running at once (default 8)")

    logs = sub.add_parser("logs", help="an action's engine output (stdout and stderr), from a running dart")
    logs.add_argument("action_id")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the action has ended")
    cancel = sub.add_parser("cancel", help="cancel a running workflow instance (its engines are stopped)")
    cancel.add_argument("instance_id")
    cancel.add_argument("--reason", help="recorded with the cancel")
    for runs in (logs, cancel):
        runs.add_argument("--api-url", help="default: DART_API_URL, else http://HOST:PORT/api/1")
        runs.add_argument("--key", help="key:secret (default: DART_BOOTSTRAP_API_KEY, else $DART_HOME/credentials)")

    sandbox = sub.add_parser("sandbox", help="run the sandbox's data chain on a `dart up --sandbox` and print its report")
    sandbox.add_argument("--api-url", help="default: DART_API_URL, else http://HOST:PORT/api/1")
    sandbox.add_argument("--key", help="key:secret (default: DART_BOOTSTRAP_API_KEY, else $DART_HOME/credentials)")
    sandbox.add_argument("--wait", action="store_true", help="follow the chain to its end and print the report")

    demo = sub.add_parser("demo", help="create and run the workflow chaining demo (no_op engine) on a running dart")
    demo.add_argument("--api-url", help="default: DART_API_URL, else http://HOST:PORT/api/1")
    demo.add_argument("--key", help="key:secret (default: DART_BOOTSTRAP_API_KEY, else $DART_HOME/credentials)")
    demo.add_argument("--sleep", type=int, default=1, help="seconds each no_op action sleeps (default 1)")
    demo.add_argument("--no-run", action="store_true", help="create the entities only; do not start workflow 1")
    demo.add_argument("--wait", action="store_true", help="wait for both workflows' runs and print their states")

    from services.runtime.deploy.command import add_arguments as deploy_arguments  # argparse only

    deploy_arguments(sub.add_parser("deploy", help="create, upgrade or delete an AWS environment (docs/deploy.md)"))

    from services.runtime.cli_triggers import add_arguments as trigger_arguments  # argparse only

    trigger_arguments(sub.add_parser("triggers", help="pause, unpause or backfill a scheduled trigger"))

    from services.runtime.apply import add_arguments as apply_arguments  # argparse only

    apply_arguments(sub)  # apply, export: definitions as files (issue 17)

    db = sub.add_parser("db", help="the database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="create or upgrade every table to the newest migration")
    db.add_parser("revision", help="print the current and newest migration")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Each subcommand imports its modules when it is chosen (deliberately lazy): ``dart keys`` or
    ``dart events tail`` should not pay for importing falcon, kombu, boto3 and every worker."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(port=getattr(args, "port", None), host=getattr(args, "host", None))
    except SettingsError as exc:
        print(f"dart: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    try:
        if args.command == "up":
            from services.runtime.up import run_up

            return run_up(settings, sandbox=args.sandbox, force_sandbox=args.force_sandbox,
                          sandbox_lines=args.sandbox_lines)
        if args.command == "events":
            return _events(settings, args)
        if args.command == "projections":
            from services.runtime.cli_projections import rebuild_command, status_command

            return rebuild_command(settings, args.names) if args.action == "rebuild" else status_command(settings)
        if args.command == "db":
            return _db(settings, args.action)
        if args.command == "relay":
            from services.runtime.composition import run_relay

            return run_relay(settings)
        if args.command == "worker":
            from services.runtime.composition import run_worker

            return run_worker(settings, args.name)
        if args.command == "engine-worker":
            from services.runtime.engine_workers import run_engine_worker

            return run_engine_worker(settings, args.engine, args.concurrency)
        if args.command == "keys":
            return _keys(settings, args)
        if args.command == "demo":
            return _demo(settings, args)
        if args.command == "deploy":
            from services.runtime.deploy.command import run_deploy

            return run_deploy(settings, args)
        if args.command == "triggers":
            from services.runtime.cli_triggers import run_triggers

            return run_triggers(_client(settings, args), args)
        if args.command == "sandbox":
            return _sandbox(settings, args)
        if args.command in ("apply", "export"):
            return _apply(settings, args)
        if args.command in ("logs", "cancel"):
            return _runs(settings, args)
        if args.command == "api":
            # prometheus_client picks per-process or multiprocess counting when first imported, so the workers'
            # directory (fresh and private: nothing stale is added in) must be set before the API's modules load.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dart-metrics-")
            from services.runtime.gunicorn_app import serve

            return serve(settings, args.workers, args.threads)
    except KeyboardInterrupt:
        return 130
    except (KeyError, ValueError) as exc:  # SettingsError is a ValueError: named, not a traceback
        print(f"dart: {exc}", file=sys.stderr)
        return 2
    return 2


def _events(settings: Settings, args: argparse.Namespace) -> int:
    from services.commands import audit
    from services.runtime.composition import build

    store = build(settings).store
    if args.action == "tail":
        audit.tail(
            store, last=args.last, after=args.after, follow=args.follow, types=args.types,
            streams=args.streams, as_json=args.json, poll_interval=settings.poll_interval,
        )
        return 0
    position, at = _as_of(args.as_of)
    audit.show_stream(store, args.stream, as_json=args.json, position=position, at=at)
    return 0


def _as_of(value: str | None) -> tuple[int | None, datetime | None]:
    """The API's own reading of as_of (ASCII digits or an ISO time with an offset), named as the option."""
    if value is None:
        return None, None
    try:
        return parse_as_of(value)
    except BadRequest as exc:
        raise ValueError(exc.message.replace("as_of:", "--as-of:", 1)) from exc


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from services.commands.auth import issue_key, list_keys, revoke_key
    from services.domain.errors import DartError
    from services.runtime.composition import build

    store = build(settings).store
    try:
        if args.action == "list":
            offset = 0
            while page := list_keys(store, 1000, offset).results:
                for key in page:
                    print(f"{key['key']}\t{key['role']}\t{key['user_id']}\t{key['expires'] or '-'}\t"
                          f"{key['created']}")
                offset += len(page)
            return 0
        if args.action == "revoke":
            revoke_key(store, args.key, actor="dart keys revoke")
            print(f"revoked {args.key}", file=sys.stderr)
            return 0
        if "@" not in args.user:
            raise ValueError(f"--user must be an email address, not {args.user!r}")
        if args.admin and args.role not in (None, "admin"):
            raise ValueError(f"--admin contradicts --role {args.role}")
        role = "admin" if args.admin else args.role or "editor"
        created = issue_key(store, args.user, role, args.expires, actor="dart keys create")
    except DartError as exc:
        raise ValueError(exc.message) from exc
    print(f"{created['key']}:{created['secret']}")
    expiry = f", expires {created['expires']}" if created["expires"] else ""
    print(f"created a{'n' if role[0] in 'aeo' else ''} {role} key for {args.user}{expiry}; the secret is not "
          "shown again", file=sys.stderr)
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from services.runtime.demo import DemoError, create_demo, wait_for_runs

    client = _client(settings, args)
    try:
        demo = create_demo(client, args.sleep, run=not args.no_run)
        print(f"datastore {demo.datastore_id}; workflow 1 {demo.workflow_ids[0]}; workflow 2 {demo.workflow_ids[1]}; "
              f"trigger {demo.trigger_id} (workflow 1 completed -> workflow 2)")
        if demo.instance_id:
            print(f"workflow 1 started: instance {demo.instance_id}")
        if args.wait and demo.instance_id:
            states = wait_for_runs(client, demo)
            print(f"workflow 1: {states[0]}; workflow 2: {states[1]}")
            return 0 if states == ["COMPLETED", "COMPLETED"] else 1
    except DemoError as exc:
        print(f"dart demo: {exc}", file=sys.stderr)
        return 1
    return 0


def _client(settings: Settings, args: argparse.Namespace) -> Any:
    from services.runtime.demo import RestClient, api_key

    key = api_key(args.key, settings.bootstrap_api_key, settings.home)
    return RestClient(args.api_url or settings.api_url or f"http://{settings.host}:{settings.port}/api/1", key)


def _runs(settings: Settings, args: argparse.Namespace) -> int:
    from services.runtime.cli_runs import cancel_command, logs_command
    from services.runtime.demo import DemoError

    try:
        if args.command == "logs":
            return logs_command(_client(settings, args), args.action_id, args.follow)
        return cancel_command(_client(settings, args), args.instance_id, args.reason)
    except DemoError as exc:
        print(f"dart {args.command}: {exc}", file=sys.stderr)
        return 1


def _apply(settings: Settings, args: argparse.Namespace) -> int:
    from services.client import Dart
    from services.runtime.apply import run_command
    from services.runtime.demo import api_key

    key = api_key(args.key, settings.bootstrap_api_key, settings.home)
    return run_command(Dart(args.api_url or settings.api_url or f"http://{settings.host}:{settings.port}/api/1",
                            key), args)


def _sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from services.runtime.sandbox import SandboxError, sandbox_command

    try:
        return sandbox_command(settings, _client(settings, args), wait=args.wait)
    except SandboxError as exc:
        print(f"dart sandbox: {exc}", file=sys.stderr)
        return 1


def _db(settings: Settings, action: str) -> int:
    from events.database import create_engine, current_revision, head_revision, upgrade

    settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.effective_database_url)
    if action == "upgrade":
        upgrade(engine)
    print(f"current: {current_revision(engine)}  newest: {head_revision()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
