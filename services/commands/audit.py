"""Reading the log for people: one readable line per event, or the documented envelope as JSON; an API key's
salt and secret hash are left out, as the API's /log and history leave them out (one redaction)."""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime
from typing import TextIO

from events.store import EventStore
from events.streams.entity import State
from events.types import RecordedEvent
from services.domain.roles import KEY_EVENT_TYPES, redact_key_data, redact_key_event


def format_event(event: RecordedEvent, as_json: bool = False) -> str:
    envelope = redact_key_event(event.as_dict())  # the terminal and its scrollback are no place for key hashes
    if as_json:
        return json.dumps(envelope, sort_keys=True)
    actor = event.metadata.get("actor") or "?"
    data = json.dumps(envelope["data"], separators=(",", ":"), sort_keys=True)
    if len(data) > 160:
        data = data[:157] + "..."
    return (
        f"#{event.global_position:<8} {event.recorded_at:%Y-%m-%d %H:%M:%S.%f}Z  "
        f"{event.stream_id} v{event.stream_version}  {event.type}  by {actor}  {data}"
    )


def tail(
    store: EventStore,
    out: TextIO = sys.stdout,
    *,
    last: int = 20,
    after: int | None = None,
    follow: bool = False,
    types: list[str] | None = None,
    streams: list[str] | None = None,
    as_json: bool = False,
    poll_interval: float = 0.5,
    stop: threading.Event | None = None,
) -> int:
    """Print events after a position (default: the last ``last`` ones); with ``follow``, keep printing new
    ones until ``stop`` is set or the user interrupts. Returns the last position printed."""
    position = after if after is not None else max(0, store.head_position() - last)
    stop = stop or threading.Event()
    while True:
        batch = store.read_all(position, 1000, types=types or None, streams=streams or None)
        for event in batch:
            out.write(format_event(event, as_json) + "\n")
            position = event.global_position
        out.flush()
        if len(batch) == 1000:
            continue
        if not follow or stop.is_set():
            return position
        if not batch:
            store.wait_for_append(position, poll_interval)
            if stop.wait(0 if store.head_position() > position else poll_interval):
                return position


def show_stream(
    store: EventStore,
    stream_id: str,
    out: TextIO = sys.stdout,
    *,
    as_json: bool = False,
    position: int | None = None,
    at: datetime | None = None,
) -> State:
    """Print one entity's history (up to a position or moment) and return its folded state then."""
    events = store.read_until(stream_id, position=position, at=at)
    state: State = None
    for event in events:
        out.write(format_event(event, as_json) + "\n")
        cls = store.registry.class_for(event.type)
        evolve = getattr(cls, "evolve", None)
        if evolve is not None:
            state = cls(**event.data).evolve(state)  # type: ignore[attr-defined]
    if isinstance(state, dict) and any(e.type in KEY_EVENT_TYPES for e in events):
        state = redact_key_data(state)  # a key's folded state holds the same salt and hash
    if not as_json:
        if not events:
            out.write(f"{stream_id}: no events\n")
        else:
            out.write(f"-- state at #{events[-1].global_position} (v{events[-1].stream_version}):\n")
            out.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
    return state
