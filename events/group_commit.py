"""Group commit: concurrent appends of one process committed together, one transaction and one global-order
lock per group, each caller answered with its own result or error.

No committer thread: the first appender to arrive leads, commits what it carries (alone, through the store's
one-statement path, when nobody else waits) and, while it commits, later appenders queue. When it is done it
hands the lead to the first of them, who takes everything queued by then as one group. A lone writer pays one
uncontended lock and no hand-off; N concurrent writers pay about one commit (one WAL flush) per group instead
of one each. The store decides what a group is (``commit_group``): it must answer every member, and a member
it could not settle inside the group is retried alone (``commit_solo``), so a conflicting or failing append
fails alone and never takes the others with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Work = TypeVar("Work")
MAX_GROUP = 64  # members per transaction: bounds the lock hold and the statement pipeline


class Member(Generic[Work]):
    """One caller's append waiting in (or leading) a group."""

    __slots__ = ("_lead", "_woken", "error", "result", "settled", "work")

    def __init__(self, work: Work) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.settled = False  # result or error is final; else the group left it to a solo retry
        self._woken = threading.Event()
        self._lead = False

    def answer(self, result: Any) -> None:
        self.result, self.settled = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.settled = error, True


class GroupCommitter(Generic[Work]):
    def __init__(
        self,
        commit_solo: Callable[[Work], Any],
        commit_group: Callable[[Sequence[Member[Work]]], None],
        max_group: int = MAX_GROUP,
    ) -> None:
        self._solo = commit_solo
        self._group = commit_group
        self._max = max_group
        self._lock = threading.Lock()
        self._queue: list[Member[Work]] = []
        self._leading = False
        self.groups = 0  # groups of two or more committed (for tests and benchmarks)
        self.grouped = 0  # appends committed in them

    def waiting(self) -> int:
        """Appends queued behind the one being committed."""
        with self._lock:
            return len(self._queue)

    def submit(self, work: Work) -> Any:
        with self._lock:
            if not self._leading:
                self._leading = True
                member = None
            else:
                member = Member(work)
                self._queue.append(member)
        if member is None:  # nobody commits now: this caller's append goes alone, as before group commit
            try:
                return self._solo(work)
            finally:
                self._hand_over()
        member._woken.wait()
        if member._lead:
            self._lead_group()
        if member.error is not None:
            raise member.error
        return member.result

    def _lead_group(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[:self._max], self._queue[self._max:]
        try:
            if len(batch) == 1:
                self._run_solo(batch[0])
            else:
                try:
                    self._group(batch)
                except Exception:  # noqa: BLE001 - the group failed as a whole (a lost connection ...): each goes alone
                    for m in batch:  # an append the group did commit is found stored by its event ids
                        m.result, m.error, m.settled = None, None, False
                except BaseException as exc:
                    for m in batch:
                        m.fail(exc)
                    raise
                self.groups += 1
                self.grouped += len(batch)
                for m in batch:
                    if not m.settled:
                        self._run_solo(m)
        finally:
            for m in batch:
                if not m._lead:
                    m._woken.set()
            self._hand_over()

    def _run_solo(self, m: Member[Work]) -> None:
        try:
            m.answer(self._solo(m.work))
        except Exception as exc:  # noqa: BLE001 - raised to that member's caller
            m.fail(exc)

    def _hand_over(self) -> None:
        with self._lock:
            if not self._queue:
                self._leading = False
                return
            nxt = self._queue[0]
        nxt._lead = True
        nxt._woken.set()
