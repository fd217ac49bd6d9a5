"""Finding a local engine process by its action, whoever started it: the ``DART_ACTION_ID`` in its environment
as /proc shows it, and whether a pid is still the action's engine (alive, not a zombie, not a reused pid)."""

from __future__ import annotations

import os


def engine_pids(action_id: str) -> list[int]:
    """Processes of this machine whose environment names the action (DART_ACTION_ID): its engine, whichever
    process started it. Empty where /proc cannot be read."""
    needle = f"DART_ACTION_ID={action_id}".encode()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit() and _environ_has(int(entry), needle):
            found.append(int(entry))
    return found


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


def engine_alive(pid: int, action_id: str) -> bool:
    """Whether ``pid`` is still the action's engine: a live process (not a zombie) whose environment, where
    /proc shows it, names the action (a pid reused by another process is not the engine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive, and /proc tells whose
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                return False
    except OSError:
        return not os.path.isdir("/proc")  # gone meanwhile; without /proc, the signal test is all there is
    return _environ_has(pid, f"DART_ACTION_ID={action_id}".encode())
