"""The store benchmark's own proof of gap-free order: while dart's writers append (group commit included), a
reader tails ``global_position > last ORDER BY global_position`` (the predicate every catch-up reader uses)
every 5 ms, on its own connection. At the end every committed position must have been seen, once, in order:
a late commit below a position already seen would show as a skipped one. It polls rather than waiting on the
store's wake-up, which would start a LISTEN connection in the benchmark's process and charge its work (and
its backend's) to dart's CPU per event, which the bare target does not pay.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from events.store import EventStore

_PAGE = "SELECT global_position FROM events WHERE global_position > %s ORDER BY global_position LIMIT 5000"


class GapCheck:
    def __init__(self, store: EventStore, conninfo: str) -> None:
        self.store = store
        self.conninfo = conninfo
        self.seen: list[int] = []
        self.reads = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gap-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                last = 0
                while True:
                    stopping = self._stop.is_set()
                    page = [r[0] for r in conn.execute(_PAGE, (last,)).fetchall()]
                    self.reads += 1
                    if page:
                        self.seen += page
                        last = page[-1]
                    elif stopping:
                        return
                    else:
                        time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self.error = exc

    def result(self) -> dict[str, Any]:
        """Stop (after reading to the end) and compare what was seen with the table."""
        self._stop.set()
        self._thread.join(60)
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            table = [r[0] for r in conn.execute("SELECT global_position FROM events ORDER BY 1").fetchall()]
        skipped = sorted(set(table) - set(self.seen))
        in_order = all(a < b for a, b in zip(self.seen, self.seen[1:]))
        ok = self.error is None and not skipped and in_order and self.seen == table
        return {"events": len(table), "seen": len(self.seen), "reads": self.reads, "skipped": len(skipped),
                "in_order": in_order, "error": repr(self.error) if self.error else None, "gap_free": ok}
