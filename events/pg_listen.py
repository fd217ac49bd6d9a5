"""Other processes' appends, heard at once: every PostgreSQL append sends ``NOTIFY dart_events`` in its own
transaction (payload ``"<position> <type>[:<position>],..."``: the highest position it committed, and each
event type with its highest position; a type without one is at the first), and a process whose followers
wait (``EventStore.wait_for_append``) LISTENs on one dedicated connection and wakes them. PostgreSQL delivers a notification only after its transaction committed, so a
woken reader's next query sees the events.

A notification can be missed only while this connection is down; each (re)connect therefore reports the
head as a wake for every type, and readers keep a (long) poll as a fallback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

log = logging.getLogger("dart.events")

CHANNEL = "dart_events"
# The select-list item that notifies an insert whose rows a CTE ``ins`` returns (global_position, type): its
# head and each type's highest position, as ``parse_payload`` reads them; one NOTIFY per statement.
NOTIFY_FROM_INS = (f"(SELECT pg_notify('{CHANNEL}', max(p)::text || ' ' || string_agg(t || ':' || p, ','))"
                   " FROM (SELECT type AS t, max(global_position) AS p FROM ins GROUP BY type) AS heads)")

# (position, {type: its highest position}, or None for "any type")
OnNotify = Callable[[int, dict[str, int] | None], None]


def parse_payload(payload: str) -> tuple[int, dict[str, int] | None]:
    position, _, types = payload.partition(" ")
    head = int(position)
    if not types:
        return head, None
    heads = {}
    for entry in types.split(","):
        name, _, at = entry.partition(":")
        heads[name] = int(at) if at else head
    return head, heads


class AppendListener:
    """A daemon thread holding one LISTEN connection; reconnects with backoff until ``close``."""

    def __init__(self, conninfo: str, on_notify: OnNotify) -> None:
        self.conninfo = conninfo
        self.on_notify = on_notify
        self.listening = threading.Event()  # set while LISTEN is in force and its first wake is done (tests wait)
        self.heard = 0  # notifications received (tests, benchmarks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dart-listen", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    row = conn.execute("SELECT COALESCE(max(global_position), 0) FROM events").fetchone()
                    self.on_notify(int(row[0]) if row else 0, None)  # whatever was appended while nobody listened
                    self.listening.set()  # (after that wake: a reader that starts waiting now is not woken by it)
                    backoff = 0.1
                    while not self._stop.is_set():
                        # Returns after the timeout with nothing heard, so close() is noticed within it.
                        for note in conn.notifies(timeout=0.5):
                            self.heard += 1
                            try:
                                position, types = parse_payload(note.payload)
                            except ValueError:  # not one of ours
                                continue
                            self.on_notify(position, types)
            except Exception as exc:  # noqa: BLE001 - the database is away: readers poll meanwhile
                log.warning("LISTEN %s connection failed (%s); readers poll until it is back", CHANNEL, exc)
            finally:
                self.listening.clear()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
