"""A sandbox engine as every run uses it, in a web process or in a run's own process.

Nothing here needs Django: a heavy run's process (`playground.running.apart`) builds the same
engine from the URL it is handed.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg
from sqlalchemy import URL, Engine, create_engine, event, exc
from sqlalchemy.util import LRUCache

from playground.running import capture

COMPILED_KEPT = 100
"""Compiled statements kept for all the sandbox engines of a process together (see `_compiled`)."""
_compiled = LRUCache(COMPILED_KEPT)
"""One compiled-statement cache for every sandbox engine of the process, instead of one of 500
entries each: a process keeps dozens of engines (one per recent session), and each compiled
the same recipes' statements into a cache of its own, so memory grew with the sessions served.
Entries are keyed by their engine's dialect, so none is ever used by another engine; the shared
bound is what matters, and the most recent sessions' statements are the ones kept."""


def sandbox_engine(url: URL | str, *, pool_size: int, max_overflow: int, **options: Any) -> Engine:
    """A pooled engine logging in as a sandbox role: planned afresh, its session state discarded
    when a connection goes back to the pool, the run's watch and capture listening."""
    connect_args = {
        # Server-side prepared statements would let Postgres switch to a generic plan after a few
        # runs, silently changing the plans people compare; every run is planned afresh.
        "prepare_threshold": None,
        **options.pop("connect_args", {}),
    }
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=5,
        connect_args=connect_args,
        **options,
    )
    engine.update_execution_options(compiled_cache=_compiled)
    event.listen(engine, "checkout", refuse_if_closed)
    event.listen(engine, "reset", discard_session_state)
    return capture.instrument(engine)


def refuse_if_closed(dbapi_connection, connection_record, connection_proxy) -> None:
    """Hand out a pooled connection only if the server has not closed it: instead of a ping.

    A pre-ping is a round trip on every checkout, and a run checks out three times (setup,
    variant, EXPLAIN). The reset that put the connection back in the pool (`DISCARD ALL`)
    already proved it alive then; what can happen since is the server ending it (a restart, an
    idle timeout, a terminated backend), and a server that ends a connection says so on its
    socket (an error message, then end of file). An idle connection has nothing to read, so a
    socket that is readable, or a connection psycopg knows is broken, makes the pool throw this
    one away and hand out a new one (SQLAlchemy's `DisconnectionError` protocol). Nothing is
    read or sent: no round trip.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise exc.DisconnectionError("the connection was closed")
    try:
        poller = select.poll()  # not select(): a busy process may have descriptors past 1024
        poller.register(dbapi_connection.pgconn.socket, select.POLLIN)
        readable = poller.poll(0)
    except (OSError, ValueError, psycopg.Error) as error:
        raise exc.DisconnectionError(f"the connection's socket is gone: {error}") from error
    if readable:
        raise exc.DisconnectionError("the server sent something to an idle connection: it ended it")


def discard_session_state(dbapi_connection, connection_record, reset_state) -> None:
    """Before a connection goes back to the pool, forget whatever the run did to its session.

    ROLLBACK alone keeps session-level SETs (a variant's `SET statement_timeout = 0` would
    outlive it), temporary tables, prepared statements, advisory locks and LISTENs. DISCARD ALL
    returns the session to the role's own settings. A failure here makes the pool discard the
    connection instead of reusing it.
    """
    if reset_state.terminate_only:
        return
    dbapi_connection.rollback()
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute("DISCARD ALL")
    finally:
        dbapi_connection.autocommit = False
