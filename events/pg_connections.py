"""The PostgreSQL store's connections: the append pool's connection class, and finding a connection the
server closed without a round trip."""

from __future__ import annotations

import select
from typing import Any

import psycopg
import sqlalchemy as sa

_OK = psycopg.pq.ConnStatus.OK


def closed_by_server(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server has closed, or is closing, this idle connection (a restart, ``pg_terminate_backend``,
    an idle timeout), found without a round trip: one ``poll`` of the socket, ~1 us against ~150 us of wall
    time for a ``SELECT 1`` ping here.

    An idle connection is never sent anything (nothing LISTENs on these connections) but a server's last
    words: a FATAL message and then the end of the stream. So anything to read means the connection is gone
    or going. The message alone is enough: a terminated backend sends it, leaves pg_stat_activity and only
    then closes its socket, so a check in between that waited for the end of the stream would pass a dying
    connection. A connection whose peer vanished without a word (a dead network) still passes: an append
    then retries once (see ``append``), a read fails.
    """
    pgconn = conn.pgconn
    if pgconn.status != _OK:
        return True
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))  # readable, or POLLHUP / POLLERR, which poll reports unasked


def replace_connections_closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """SQLAlchemy checkout hook: a connection the server closed while it sat in the pool is replaced
    (SQLAlchemy reconnects it and runs the check again) instead of failing the caller's first statement."""
    if closed_by_server(dbapi_connection):  # SQLAlchemy closes it before it reconnects
        raise sa.exc.DisconnectionError("the server closed this idle connection")


class AppendConnection(psycopg.Connection[Any]):
    """An autocommit append connection with the one cursor every append on it reuses: ``conn.execute``
    makes a new cursor, with its own adapters and transformer, for every statement (~20 us of client CPU an
    append, docs/benchmarks.md)."""

    append_cursor: psycopg.Cursor[Any]


def give_cursor(conn: AppendConnection) -> None:
    conn.append_cursor = conn.cursor()
