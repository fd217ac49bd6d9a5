"""The free-slot rule (datastore concurrency, reference §8.3): which QUEUED actions of a datastore may move to
PENDING now, and the append that takes their slots, guarded by the datastore's version so two launchers
deciding at once cannot both fill the same free slot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from events.streams.action import ActionPending
from events.streams.datastore import DatastoreSlotTaken
from events.types import Metadata, NewEvent, StreamAppend

BUSY = ("PENDING", "RUNNING", "FINISHING")  # holding one of the datastore's slots

Action = Mapping[str, Any]  # an action's data with its "id" and "_version"


def free_slots(datastore: Mapping[str, Any], live: Iterable[Action]) -> int:
    """The datastore's concurrency (default 1) minus its busy actions; negative when it is over."""
    return int(datastore.get("concurrency") or 1) - sum(a.get("state") in BUSY for a in live)


def slots_to_take(datastore: Mapping[str, Any], live: Iterable[Action]) -> list[Action]:
    """The QUEUED actions that get a slot now, oldest queued first (then by order_idx): as many as are free;
    none on a datastore that is not ACTIVE."""
    if datastore.get("state") != "ACTIVE":
        return []
    live = list(live)
    queued = sorted((a for a in live if a.get("state") == "QUEUED"),
                    key=lambda a: (a.get("queued_time") or "", float(a.get("order_idx") or 0)))
    return queued[:max(free_slots(datastore, live), 0)]


def pending_appends(datastore_id: str, datastore_version: int, taken: Sequence[Action],
                    meta: Metadata) -> list[StreamAppend]:
    """The launch intent: the slots taken on the datastore's stream, each action PENDING at its version."""
    if not taken:
        return []
    return [
        StreamAppend(f"datastore-{datastore_id}", datastore_version, [NewEvent(
            DatastoreSlotTaken({"pending": [a["id"] for a in taken]}), meta)]),
        *(StreamAppend(f"action-{a['id']}", a["_version"], [NewEvent(ActionPending({"state": "PENDING"}), meta)])
          for a in taken),
    ]
