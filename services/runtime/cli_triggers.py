"""``dart triggers``: a schedule's controls from the command line, over the REST API of a running dart
(``backfill ID --start --end [--dry-run]``, ``pause ID --reason``, ``unpause ID --reason``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    backfill = actions.add_parser("backfill", help="fire a scheduled trigger for its past times from --start to "
                                                   "--end (both included) not fired yet")
    backfill.add_argument("trigger_id")
    backfill.add_argument("--start", required=True, help="ISO 8601 time with an offset, e.g. 2026-11-01T00:00:00Z")
    backfill.add_argument("--end", required=True, help="ISO 8601 time with an offset (not in the future)")
    backfill.add_argument("--dry-run", action="store_true", help="only list the times it would fire")
    backfill.add_argument("--overlap-policy", choices=["skip", "buffer_one", "allow_all"],
                          help="instead of the trigger's own, for these fires")
    for name, what in (("pause", "pause a scheduled trigger"), ("unpause", "resume a paused scheduled trigger")):
        control = actions.add_parser(name, help=what)
        control.add_argument("trigger_id")
        control.add_argument("--reason", required=True, help="why (recorded with you as the actor)")
    for sub in (backfill, *(actions.choices[n] for n in ("pause", "unpause"))):
        sub.add_argument("--api-url", help="default: DART_API_URL, else http://HOST:PORT/api/1")
        sub.add_argument("--key", help="key:secret (default: DART_BOOTSTRAP_API_KEY, else $DART_HOME/credentials)")


def run_triggers(client: Any, args: argparse.Namespace) -> int:
    """Print what the API answered: one scheduled time a line (a dry run's, or the fired ones)."""
    from services.runtime.demo import DemoError

    try:
        if args.action == "backfill":
            body: dict[str, Any] = {"start": args.start, "end": args.end, "dry_run": args.dry_run}
            if args.overlap_policy:
                body["overlap_policy"] = args.overlap_policy
            answer = client.call("POST", f"/trigger/{args.trigger_id}/backfill", body)
            verb = "would fire" if args.dry_run else "fired"
            for t in answer["scheduled_times"]:
                print(t)
            print(f"{len(answer['scheduled_times'])} scheduled times {verb}; {len(answer['already_fired'])} fired "
                  "before (not again)", file=sys.stderr)
            return 0
        answer = client.call("POST", f"/trigger/{args.trigger_id}/{args.action}", {"reason": args.reason},
                             whole=True)
        state = "paused" if answer["results"]["data"].get("paused") else "not paused"
        print(f"trigger {args.trigger_id} is {state}" + ("" if answer.get("changed") else " (it already was)"))
        return 0
    except DemoError as exc:
        print(f"dart triggers: {exc}", file=sys.stderr)
        return 1
