"""Counting the SQL statements this process sends, by thread, for bench/throughput_bench.py's
``--count-statements`` (issue 16, item 5). A measurement hook, installed only by that bench:

- SQLite: every connection's ``set_trace_callback`` (SQLAlchemy "connect" hook on every engine), which sees
  each statement SQLite runs for the connection, BEGIN and COMMIT included;
- PostgreSQL: psycopg's ``Cursor.execute``/``executemany`` (every statement dart sends goes through a cursor,
  pipelined ones included) and ``Connection.commit``/``rollback`` (psycopg opens a transaction with an
  implicit BEGIN before the first statement of a non-autocommit connection: one per commit or rollback).

Statements sent from the thread that created the counter (the bench's own waiting) are left out.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa


def _who() -> str:
    name = threading.current_thread().name
    if name.startswith("waitress"):
        return "api"
    if name.startswith("sub:"):
        return name[4:]
    return name.split("-")[0].split("_")[0]


def _shape(sql: Any) -> str:
    text = sql.decode() if isinstance(sql, bytes) else str(sql)
    return " ".join(text.split())[:90]


class Counted:
    def __init__(self) -> None:
        self.by_thread: Counter[str] = Counter()
        self.by_statement: Counter[str] = Counter()
        self.appends: Counter[str] = Counter()
        self.transactions = 0

    def summary(self) -> dict[str, Any]:
        return {"statements": sum(self.by_thread.values()), "transactions": self.transactions,
                "appends": sum(self.appends.values()), "appends_by_thread": dict(self.appends.most_common()),
                "by_thread": dict(self.by_thread.most_common()),
                "top_statements": dict(self.by_statement.most_common(25))}


class StatementCounter:
    def __init__(self) -> None:
        self._active: Counted | None = None
        self._bench_thread = threading.get_ident()
        self._lock = threading.Lock()
        counter = self

        @sa.event.listens_for(sa.Engine, "connect")
        def _trace(dbapi_connection: Any, _record: Any) -> None:
            if hasattr(dbapi_connection, "set_trace_callback"):  # sqlite3
                dbapi_connection.set_trace_callback(counter._statement)

        for cls in (psycopg.Cursor,):
            original_execute, original_many = cls.execute, cls.executemany

            def execute(self: Any, query: Any, *args: Any, _o: Any = original_execute, **kw: Any) -> Any:
                counter._statement(query)
                return _o(self, query, *args, **kw)

            def executemany(self: Any, query: Any, params: Any, *args: Any, _o: Any = original_many,
                            **kw: Any) -> Any:
                counter._statement(query)
                return _o(self, query, params, *args, **kw)

            cls.execute = execute  # type: ignore[method-assign]
            cls.executemany = executemany  # type: ignore[method-assign]
        for name in ("commit", "rollback"):
            original = getattr(psycopg.Connection, name)

            def ended(self: Any, _o: Any = original, _name: str = name) -> Any:
                if self.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    counter._statement(f"BEGIN (implicit) + {_name.upper()}", 2)
                return _o(self)

            setattr(psycopg.Connection, name, ended)

    def watch_appends(self, store: Any) -> None:
        """Count ``store.append`` calls (one append: one atomic write, however many events)."""
        original = store.append

        def append(*parts: Any) -> Any:
            active = self._active
            if active is not None and threading.get_ident() != self._bench_thread:
                with self._lock:
                    active.appends[_who()] += 1
            return original(*parts)

        store.append = append

    def _statement(self, sql: Any, n: int = 1) -> None:
        active = self._active
        if active is None or threading.get_ident() == self._bench_thread:
            return
        shape = _shape(sql)
        with self._lock:
            active.by_thread[_who()] += n
            active.by_statement[shape] += n
            if shape.upper().startswith(("COMMIT", "BEGIN (IMPLICIT)")):
                active.transactions += 1

    @contextmanager
    def counting(self) -> Iterator[Counted]:
        counted = Counted()
        self._active = counted
        try:
            yield counted
        finally:
            self._active = None
