"""The launch intent: the append that takes a datastore's free slots (DatastoreSlotTaken {pending}, each action
PENDING at its version, guarded by the datastore's version; services/domain/slots.py) with, where the launcher
mints them, each engine's token in the same write. A launcher's own slot-taking appends it
(services/commands/launcher.py), and so does the queueing of an orchestrator whose process runs the launcher
(services/commands/actions.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from events.types import Metadata, StreamAppend
from services.commands.auth import new_api_key
from services.domain import slots


def launch_intent(datastore_id: str, datastore_version: int, taken: Sequence[Mapping[str, Any]], meta: Metadata,
                  mints_keys: bool) -> tuple[list[StreamAppend], list[dict[str, Any]]]:
    """The appends that move ``taken`` (as read: each with its ``_version``) to PENDING, and those actions as
    the launcher starts them: PENDING, at their new version, with their engine's token (None where the
    launcher does not mint keys)."""
    appends = slots.pending_appends(datastore_id, datastore_version, taken, meta)
    tokens: dict[str, str] = {}
    if mints_keys:  # each engine's token is created with its launch intent: one write, not two
        for action in taken:
            append, key, secret = new_api_key(f"engine@{action.get('engine_name')}", f"action:{action['id']}",
                                              actor="launcher")
            appends.append(append)
            tokens[action["id"]] = f"{key}:{secret}"
    pending = [{**a, "state": "PENDING", "_version": a["_version"] + 1, "_token": tokens.get(a["id"])}
               for a in taken]
    return appends, pending
