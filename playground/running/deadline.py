"""What stops a run from outside: its deadline, a client that went away, too many statements.

A `Watch` is active around one run (routed by a ContextVar, like the capture, so worker threads
started by a recipe belong to it); one watchdog thread per process looks at every active watch's
clock and client. Once a watch is stopped, three things end the run, each where it can:

- **Between statements**: a listener on every sandbox engine refuses the run's next statement
  with `RunStopped`. This is what ends a loop of many short statements: cancelling the one in
  flight ends only that one (a recipe that catches database errors would send the next), and a
  statement timeout never fires on statements that each take a millisecond.
- **During a statement**: the watchdog's thread cancels whatever runs on the connections the run has
  checked out (psycopg's `cancel_safe`, Postgres' cancel request), so a long query, a lock wait or
  a COPY ends at the deadline, not at the role's statement timeout.
- **Python work between statements** (building 200,000 ORM objects) cannot be interrupted from
  another thread: the recipes' guards bound it before the run starts.

The client check reads the request's socket without consuming anything: a peer that closed its
end shows as readable with nothing to read (end of file). It sees a browser tab closed, a script
interrupted, or a proxy that dropped the upstream connection because its own client left.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from sqlalchemy import Engine, event

_current: ContextVar[Watch | None] = ContextVar("playground_watch", default=None)
_OWNER = "playground_watch"
"""Key in a pooled connection's record info: the watch of the run that has it checked out."""

POLL_SECONDS = 0.25
"""How often the watch's thread looks at the client and the clock while the run goes on."""
CANCEL_TIMEOUT = 5.0
"""Seconds one cancel request may take before it is given up (the server is then in trouble)."""


class RunStopped(Exception):
    """The run was stopped from outside the variant; the message says why, in plain words."""


class Watch:
    """Stops the run it is active around after `seconds`, when `client_gone()` turns true, or
    when it goes to send more than `max_statements`: `with Watch(20, client_gone=...): ...`."""

    def __init__(
        self,
        seconds: float,
        *,
        client_gone: Callable[[], bool] | None = None,
        max_statements: int | None = None,
    ):
        self.seconds = seconds
        self.client_gone = client_gone
        self.max_statements = max_statements
        self.reason: str | None = None
        """Why the run was stopped, for the person; None while it may go on."""
        self.statements = 0
        """Statements the run has sent through SQLAlchemy so far (its setup's included)."""
        self._ends = float("inf")
        self._connections: set[Any] = set()
        # Reentrant: a connection garbage-collected (and so checked in) in the watchdog's thread
        # while it cancels must not wait for itself.
        self._lock = threading.RLock()
        self._token: Token | None = None

    def __enter__(self) -> Watch:
        self._ends = time.monotonic() + self.seconds
        self._token = _current.set(self)
        _watchdog.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _watchdog.remove(self)
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def check(self) -> None:
        """Raise `RunStopped` if the run must not go on (the deadline may pass between two polls)."""
        if self.reason is None and time.monotonic() >= self._ends:
            self.stop(deadline_message(self.seconds))
        if self.reason is not None:
            raise RunStopped(self.reason)

    def stop(self, reason: str) -> None:
        """Stop the run: refuse its next statement, cancel the ones in flight. The first reason stays."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            # Held while cancelling: a connection cannot go back to the pool (and on to another
            # run) with a cancel request still on its way to it.
            for dbapi_connection in list(self._connections):
                # Closed meanwhile, or the server is gone: then nothing is left to stop.
                with contextlib.suppress(Exception):
                    dbapi_connection.cancel_safe(timeout=CANCEL_TIMEOUT)

    def _count(self) -> None:
        self.statements += 1
        if self.max_statements is not None and self.statements > self.max_statements:
            self.stop(statements_message(self.max_statements))
        self.check()

    def _poll(self) -> None:
        """The watchdog's look: stop the run if its time is up or its client has gone."""
        if self.reason is not None:
            return
        if time.monotonic() >= self._ends:
            self.stop(deadline_message(self.seconds))
        elif self.client_gone is not None and self.client_gone():
            self.stop(CLIENT_GONE)

    def _checked_out(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._connections.add(dbapi_connection)

    def _checked_in(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._connections.discard(dbapi_connection)


class _Watchdog:
    """One thread per process looks after every run in progress, every POLL_SECONDS.

    Cheaper than a thread per run (a run takes milliseconds, starting a thread a good part of
    one), and started on first use, so that a process forked from one that never ran anything
    (gunicorn's preloading master) starts its own.
    """

    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
        with self._lock:
            self._watches.add(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="playground-watchdog", daemon=True)
                self._thread.start()

    def remove(self, watch: Watch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _loop(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            with self._lock:
                watches = list(self._watches)
            for watch in watches:
                watch._poll()


_watchdog = _Watchdog()


def current() -> Watch | None:
    """The watch of the run in progress in this context, if any."""
    return _current.get()


def install(engine: Engine) -> Engine:
    """Attach the watch's listeners to `engine` (idempotent) and return it.

    Install it before the capture's listeners, so that a refused statement is never recorded as
    one that was sent.
    """
    if event.contains(engine, "before_cursor_execute", _before):
        return engine
    event.listen(engine, "before_cursor_execute", _before)
    event.listen(engine, "checkout", _checkout)
    event.listen(engine, "checkin", _checkin)
    return engine


def _before(conn, cursor, statement, parameters, context, executemany) -> None:
    watch = _current.get()
    if watch is not None:
        watch._count()


def _checkout(dbapi_connection, connection_record, connection_proxy) -> None:
    watch = _current.get()
    if watch is None:
        connection_record.info.pop(_OWNER, None)
        return
    connection_record.info[_OWNER] = watch
    watch._checked_out(dbapi_connection)


def _checkin(dbapi_connection, connection_record) -> None:
    # Whatever thread returns the connection (a garbage-collected session's, say), it leaves the
    # run that checked it out.
    watch = connection_record.info.pop(_OWNER, None) if connection_record is not None else None
    if watch is not None:
        watch._checked_in(dbapi_connection)


# --- the client -----------------------------------------------------------------------------
def client_of(environ: dict[str, Any]) -> Callable[[], bool] | None:
    """A check that the request's client is gone, from its WSGI environ; None when the server
    does not hand the socket over (gunicorn does, as `gunicorn.socket`; runserver does not)."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_STREAM:
        return None
    if hasattr(sock, "pending"):  # TLS in gunicorn itself: bytes on the wire are not the stream
        return None
    return lambda: socket_closed(sock)


def socket_closed(sock: socket.socket) -> bool:
    """Whether the peer closed `sock` (or reset it). Reads nothing: a pipelined next request
    stays where it is, for the server to read."""
    try:
        if sock.fileno() < 0:
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


# --- messages -------------------------------------------------------------------------------
CLIENT_GONE = (
    "The run was stopped because its client went away (the page was closed or the request "
    "cancelled): its statements were cancelled on the server and its transaction rolled back."
)


def deadline_message(seconds: float) -> str:
    return (
        f"The run was stopped at its deadline: one run may take at most {seconds:g} s on this "
        "instance. Its statements were cancelled on the server and its transaction rolled back; "
        "the sandbox is fine. Try smaller sizes."
    )


def statements_message(limit: int) -> str:
    return (
        f"The run was stopped when it went to send more than {limit:,} statements, the most one run "
        "may send. Its transaction was rolled back; the sandbox is fine. Try smaller sizes or bigger "
        "batches."
    )
