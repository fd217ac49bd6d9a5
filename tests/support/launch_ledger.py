"""An engine command for tests that writes down every launch before it runs the no_op engine.

    python -m tests.support.launch_ledger LEDGER [no_op engine arguments]

Each launch appends one line ``<DART_ACTION_ID> <engine pid> <launcher pid>`` (the dart process that
started it, through its warm parent if it was forked by one) to LEDGER (one small
``O_APPEND`` write, so concurrent engines never interleave), then runs the no_op engine in this process.
Configured with ``DART_LOCAL_ENGINES={"no_op_engine": [python, "-m", "tests.support.launch_ledger", LEDGER]}``
(started cold) or ``{"no_op_engine": {"module": "tests.support.launch_ledger", "args": [LEDGER]}}`` (forked warm),
the ledger is the ground truth of how many times each action's engine was started, whatever dart recorded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engines.no_op.__main__ import main as no_op_main


def launcher_pid() -> int:
    """The dart process that launched this engine: its parent, or, forked by a warm parent, that one's."""
    parent = os.getppid()
    try:
        if b"engines.warm" in Path(f"/proc/{parent}/cmdline").read_bytes():
            return int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        pass  # the warm parent is gone already: its pid, then
    return parent


def record(ledger: Path, action_id: str) -> None:
    line = f"{action_id} {os.getpid()} {launcher_pid()}\n".encode()
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(ledger: Path) -> list[tuple[str, int, int]]:
    """(action id, engine pid, launcher pid) of every launch, in order."""
    if not ledger.exists():
        return []
    rows = []
    for line in ledger.read_text().splitlines():
        action_id, pid, parent = line.split()
        rows.append((action_id, int(pid), int(parent)))
    return rows


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.support.launch_ledger LEDGER [no_op engine arguments]", file=sys.stderr)
        return 2
    record(Path(argv[0]), os.environ.get("DART_ACTION_ID", "-"))
    return no_op_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
