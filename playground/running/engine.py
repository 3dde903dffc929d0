"""A sandbox engine as every run uses it, in a web process or in a run's own process.

Nothing here needs Django: a heavy run's process (`playground.running.apart`) builds the same
engine from the URL it is handed.
"""

from __future__ import annotations

import contextlib
import select
import time
from typing import Any

import psycopg
from psycopg import pq
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
CONNECT_TIMEOUT_SECONDS = 5
"""How long a connection to a sandbox server may take to be made (libpq's `connect_timeout`): a
server that drops packets silently fails a request in seconds instead of holding it for minutes."""
RESET_DUE = "playground_reset_due"
"""Set in a pooled connection's record between its rollback and its DISCARD ALL, at checkin."""
DISCARD_PENDING = "playground_discard_pending"
"""Set in a pooled connection's record while the answer to its DISCARD ALL is still unread."""
DISCARD_WAIT_SECONDS = 5.0
"""How long a checkout waits for that answer before it gives up on the connection."""


def sandbox_engine(url: URL | str, *, pool_size: int, max_overflow: int, **options: Any) -> Engine:
    """A pooled engine logging in as a sandbox role: planned afresh, its session state discarded
    when a connection goes back to the pool, the run's watch and capture listening."""
    connect_args = {
        # Server-side prepared statements would let Postgres switch to a generic plan after a few
        # runs, silently changing the plans people compare; every run is planned afresh.
        "prepare_threshold": None,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        **options.pop("connect_args", {}),
    }
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=5,
        pool_reset_on_return=None,  # `discard_session_state` rolls back and resets
        connect_args=connect_args,
        **options,
    )
    engine.update_execution_options(compiled_cache=_compiled)
    return capture.instrument(pooled_with_reset(engine))


def pooled_with_reset(engine: Engine) -> Engine:
    """Attach the checkout check and the reset nobody waits for (the three listeners work
    together: a reset left due at checkin refuses the connection at its next checkout)."""
    event.listen(engine, "checkout", refuse_if_closed)
    event.listen(engine, "reset", discard_session_state)
    event.listen(engine, "checkin", send_discard)
    return engine


def refuse_if_closed(dbapi_connection, connection_record, connection_proxy) -> None:
    """Hand out a pooled connection only if its reset went through and the server has not closed
    it since: instead of a ping.

    A pre-ping is a round trip on every checkout, and a run checks out three times (setup,
    variant, EXPLAIN). The reset that put the connection back in the pool (`DISCARD ALL`, see
    `discard_session_state`) was sent without waiting for its answer; that answer is read here,
    and it proves the connection was alive then. What can happen since is the server ending it
    (a restart, an idle timeout, a terminated backend), and a server that ends a connection says
    so on its socket (an error message, then end of file). An idle connection has nothing more to
    read, so a reset that failed, a socket that is readable, or a connection psycopg knows is
    broken makes the pool throw this one away and hand out a new one (SQLAlchemy's
    `DisconnectionError` protocol).
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise exc.DisconnectionError("the connection was closed")
    if connection_record.info.pop(RESET_DUE, False):  # rolled back, never discarded
        raise exc.DisconnectionError("the connection's reset was never sent")
    if connection_record.info.pop(DISCARD_PENDING, False):
        _finish_discard(dbapi_connection.pgconn)
    why = ended_by_server(dbapi_connection)
    if why is not None:
        raise exc.DisconnectionError(why)


def ended_by_server(dbapi_connection: psycopg.Connection) -> str | None:
    """Why an idle connection's server has ended it, read from its socket without sending
    anything (an idle connection has nothing to read); None when nothing says so. The app
    database's connections are checked the same way (`playground.appdb`)."""
    try:
        poller = select.poll()  # not select(): a busy process may have descriptors past 1024
        poller.register(dbapi_connection.pgconn.socket, select.POLLIN)
        readable = poller.poll(0)
    except (OSError, ValueError, psycopg.Error) as error:
        return f"the connection's socket is gone: {error}"
    return "the server sent something to an idle connection: it ended it" if readable else None


def discard_session_state(dbapi_connection, connection_record, reset_state) -> None:
    """Before a connection goes back to the pool, forget whatever the run did to its session.

    ROLLBACK alone keeps session-level SETs (a variant's `SET statement_timeout = 0` would
    outlive it), temporary tables, prepared statements, advisory locks and LISTENs. DISCARD ALL
    returns the session to the role's own settings.

    Nobody waits for it: the statement is sent and the connection goes back to the pool with its
    answer on the way. The next checkout reads that answer first (`refuse_if_closed`), long after
    it arrived, so a run's three checkins cost no round trip each. A connection whose DISCARD ALL
    did not succeed is never handed out again. A failure here makes the pool discard the
    connection instead of reusing it.
    """
    if reset_state.terminate_only:
        return
    dbapi_connection.rollback()
    if dbapi_connection.prepare_threshold is not None:
        # psycopg keeps a cache of the statements it prepared, which DISCARD ALL deallocates:
        # only psycopg's own execute() clears it, so such a connection waits for its reset.
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute("DISCARD ALL")
        finally:
            dbapi_connection.autocommit = False
        return
    # Sent at checkin (`send_discard`), once SQLAlchemy has put back the connection's isolation
    # level and autocommit, which it does after this event, talking to the connection.
    connection_record.info[RESET_DUE] = True


def send_discard(dbapi_connection, connection_record) -> None:
    """Send the DISCARD ALL that `discard_session_state` left due, without waiting for it."""
    if dbapi_connection is None or not connection_record.info.pop(RESET_DUE, False):
        return
    # Marked first: if sending fails, the next checkout finds no answer and refuses the connection.
    connection_record.info[DISCARD_PENDING] = True
    with contextlib.suppress(OSError, psycopg.Error, exc.DisconnectionError):
        pgconn = dbapi_connection.pgconn
        pgconn.send_query(b"DISCARD ALL")
        _flush(pgconn)


def _flush(pgconn: pq.abc.PGconn) -> None:
    """Send what libpq holds for the server (a few bytes: at once, but it may be asked twice)."""
    until = time.monotonic() + DISCARD_WAIT_SECONDS
    while pgconn.flush():
        _wait_for(pgconn, select.POLLOUT, until)


def _finish_discard(pgconn: pq.abc.PGconn) -> None:
    """Read the answer to the DISCARD ALL sent at checkin; anything but its success refuses the
    connection."""
    until = time.monotonic() + DISCARD_WAIT_SECONDS
    try:
        pgconn.consume_input()
        while pgconn.is_busy():
            _wait_for(pgconn, select.POLLIN, until)
            pgconn.consume_input()
        results = []
        while (result := pgconn.get_result()) is not None:
            results.append(result)
    except (OSError, psycopg.Error) as error:
        raise exc.DisconnectionError(f"the connection's reset failed: {error}") from error
    done = [r.command_status for r in results if r.status == pq.ExecStatus.COMMAND_OK]
    if done != [b"DISCARD ALL"] or len(results) != 1 or pgconn.status != pq.ConnStatus.OK:
        message = pgconn.get_error_message() or "no answer"
        raise exc.DisconnectionError(f"the connection's reset failed: {message}")


def _wait_for(pgconn: pq.abc.PGconn, event_mask: int, until: float) -> None:
    """Wait for the socket to be ready for `event_mask`, or raise DisconnectionError at `until`."""
    left = until - time.monotonic()
    poller = select.poll()
    poller.register(pgconn.socket, event_mask)
    if left <= 0 or not poller.poll(left * 1000):
        raise exc.DisconnectionError(f"no answer from the server in {DISCARD_WAIT_SECONDS:g} s")
