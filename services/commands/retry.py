"""Retry on conflict: the one loop of the command side. A command reads the read models, decides, and appends
with the versions it read; when another writer moved a stream first, the append raises ``ConcurrencyError``
and the whole read-decide-append runs again on fresh state (design.md §3, "Conflicts"). Clients written for
the original never see such a conflict; only a stream that keeps moving for every try is reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from events.errors import ConcurrencyError, IdempotencyConflict
from services.domain.errors import Conflict

T = TypeVar("T")

TRIES = 10
CONFLICTS: tuple[type[Exception], ...] = (ConcurrencyError,)
# Workers derive their event ids from the causing event: a lost race can then also surface as the other
# writer's events already stored under those ids, which is the same "decide again" case.
WORKER_CONFLICTS: tuple[type[Exception], ...] = (ConcurrencyError, IdempotencyConflict)


class StillConflicting(Conflict):
    """Every try met a conflict: the stream is changing too fast (a 409 at the API)."""


def retry_on_conflict(
    attempt: Callable[[], T],
    *,
    what: str,
    tries: int = TRIES,
    conflicts: tuple[type[Exception], ...] = CONFLICTS,
) -> T:
    """Run ``attempt`` (read, decide, append) until it returns without a conflict; after ``tries`` conflicts
    raise ``StillConflicting`` naming ``what``. Any other exception propagates at once."""
    for _ in range(tries):
        try:
            return attempt()
        except conflicts:
            continue
    raise StillConflicting(f"{what} is changing too fast; try again")
