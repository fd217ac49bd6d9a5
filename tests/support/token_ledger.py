"""An engine command for tests that writes down, for each launch, what the engine's date tokens stand for
before it runs the no_op engine.

    python -m tests.support.token_ledger LEDGER [no_op engine arguments]

Each launch appends ``<DART_ACTION_ID> <DART_SCHEDULED_TIME or -> <PATTERN with its tokens substituted>`` to
LEDGER, substituting with the function every data engine uses (``engines.data.s3.tokens`` at
``token_time()``), so a test sees which day a scheduled, or backfilled, run would load.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engines.data import s3 as s3_hook
from engines.no_op.__main__ import main as no_op_main

PATTERN = "s3://bucket/day={YEAR}-{MONTH}-{DAY}/hour={HOUR}/"


def read(ledger: Path) -> dict[str, tuple[str, str]]:
    """Action id -> (DART_SCHEDULED_TIME or "-", the pattern as the engine substituted it)."""
    if not ledger.exists():
        return {}
    rows = [line.split(" ", 2) for line in ledger.read_text().splitlines()]
    return {action_id: (scheduled, path) for action_id, scheduled, path in rows}


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.support.token_ledger LEDGER [no_op engine arguments]", file=sys.stderr)
        return 2
    path = s3_hook.tokens(PATTERN, s3_hook.token_time())
    line = f"{os.environ.get('DART_ACTION_ID', '-')} {os.environ.get('DART_SCHEDULED_TIME') or '-'} {path}\n"
    fd = os.open(argv[0], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return no_op_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
