"""``python -m engines.no_op``: run the one action named by DART_ACTION_ID (what a launcher starts), or
``python -m engines.no_op register --api-url URL --token key:secret`` to register the engine with dart."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from engines.no_op.engine import register, run
from engines.sdk import DartApiError, MissingEnvironment


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engines.no_op", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the action named by DART_ACTION_ID (the default)")
    reg = commands.add_parser("register", help="register the no_op engine (or update its registration)")
    # Defaults from the engine environment, so a launcher-provided shell can register without flags.
    reg.add_argument("--api-url", default=os.environ.get("DART_API_URL"),
                     help="e.g. http://127.0.0.1:5000/api/1 (default: $DART_API_URL)")
    reg.add_argument("--token", default=os.environ.get("DART_API_TOKEN"),
                     help="key:secret (default: $DART_API_TOKEN)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    if args.command == "register":
        if not args.api_url or not args.token:
            print("register needs --api-url and --token (or DART_API_URL and DART_API_TOKEN)", file=sys.stderr)
            return 2
        try:
            engine = register(args.api_url, args.token)
        except (DartApiError, ValueError) as exc:
            print(f"could not register the no_op engine: {exc}", file=sys.stderr)
            return 1
        print(engine["id"])
        return 0
    try:
        return run()
    except (MissingEnvironment, ValueError) as exc:
        print(f"no_op engine: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
