"""Django's PostgreSQL backend, with a health check that sends nothing.

With `CONN_HEALTH_CHECKS` on, Django checks a kept connection before its first query of every
request, and after a request whose queries failed, by sending `SELECT 1`: a round trip on every
request, one in five of the app database's on a warm run. What the check is there for is a
connection the server ended meanwhile (a restart, a terminated backend, an idle timeout), and a
server that ends a connection says so on its socket: an error message, then end of file. An idle
connection has nothing to read. So a connection is usable when psycopg does not know it closed or
broken, sits outside any transaction, and its socket has nothing to read; anything else makes
Django close it and open a new one for the request's first query. The sandbox engines check
their pooled connections the same way, with the same function (`running.engine.ended_by_server`).
"""

from __future__ import annotations

import psycopg
from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

from playground.running.engine import ended_by_server


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        return usable(self.connection)


def usable(conn: psycopg.Connection | None) -> bool:
    """Whether `conn` can take the next query, judged without sending anything."""
    if conn is None or conn.closed or conn.broken:
        return False
    if conn.info.transaction_status != TransactionStatus.IDLE:
        return False  # between requests a connection in autocommit is idle; anything else is odd
    return ended_by_server(conn) is None
