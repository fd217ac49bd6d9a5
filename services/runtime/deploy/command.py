"""``dart deploy -f env.yaml [--dry-run] [--template-out FILE] [--delete]``: render the environment's template,
then create or upgrade its stack (or delete it) and print the stack's outputs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.runtime.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", required=True, help="the environment file (YAML; see deploy/example.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="render and check the template; touch nothing")
    parser.add_argument("--template-out", help="also write the template (indented JSON) to this file")
    parser.add_argument("--delete", action="store_true", help="delete the environment's stack (tear down)")
    parser.add_argument("--migrate", action="store_true",
                        help="run the migrate task even if the image did not change")
    parser.add_argument("--poll-seconds", type=float, default=5.0,
                        help="how often to poll CloudFormation and ECS while waiting (default 5)")


def run_deploy(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here, not at the top: every `dart` command builds this subcommand's arguments.
    from services.runtime.deploy.environment import DeployError, load_environment
    from services.runtime.deploy.template import readable, render

    try:
        env = load_environment(args.file)
        template = render(env)
        if args.template_out:
            Path(args.template_out).write_text(readable(template))
        if args.dry_run:
            action = "delete" if args.delete else "create or update"
            print(f"dry run: would {action} stack {env.name} in {env.region} ({len(template.encode())} bytes of "
                  f"template{', written to ' + args.template_out if args.template_out else ''})")
            return 0
        from services.runtime.deploy.stack import Deployer  # boto3 only when something is deployed

        deployer = Deployer(env, settings.aws_endpoint_url or None, poll_seconds=args.poll_seconds,
                            say=lambda line: print(f"dart deploy: {line}", file=sys.stderr))
        if args.delete:
            outcome = deployer.delete()
            print(f"stack {env.name}: {'deleted' if outcome.status == 'deleted' else 'does not exist'}")
            return 0
        outcome = deployer.deploy(template, force_migrate=args.migrate)
    except DeployError as exc:
        print(f"dart deploy: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore's errors (no credentials, refused calls): one line, not a traceback
        if type(exc).__module__.split(".")[0] != "botocore":
            raise
        print(f"dart deploy: AWS: {exc}", file=sys.stderr)
        return 1
    print(f"stack {env.name}: {outcome.status}")
    for step in outcome.steps:
        print(f"  - {step}")
    for key, value in sorted(outcome.outputs.items()):
        print(f"{key}\t{value}")
    return 0
