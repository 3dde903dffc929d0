"""Statement capture: every cursor execution and transaction boundary, with timings.

Listeners are installed once per engine; what they see is routed to the `Capture` active in the
current context (a ContextVar), so two runs sharing one engine in different threads never see
each other's statements. Worker threads started by a recipe join the capture by running in a
copy of the caller's context (`contextvars.copy_context().run`).
"""

from __future__ import annotations

import time
import weakref
from contextvars import ContextVar, Token
from typing import Any

from sqlalchemy import Engine, event

from recipes.context import MAIN_OPTION
from recipes.results import Statement, StatementKind

_current: ContextVar[Capture | None] = ContextVar("playground_capture", default=None)
_installed: weakref.WeakSet[Engine] = weakref.WeakSet()
_STARTED = "playground_started"


class Capture:
    """Collects statements while active: `with Capture() as cap: ...; cap.statements`."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self._token: Token | None = None

    def __enter__(self) -> Capture:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _current.reset(self._token)
        self._token = None

    def add(self, statement: Statement) -> None:
        self.statements.append(statement)

    @property
    def main(self) -> Statement | None:
        """The statement the recipe marked as the one to EXPLAIN (the last, if several)."""
        marked = [s for s in self.statements if s.main]
        return marked[-1] if marked else None


def install(engine: Engine) -> Engine:
    """Attach the capture listeners to `engine` (idempotent) and return it."""
    if engine in _installed:
        return engine
    event.listen(engine, "before_cursor_execute", _before)
    event.listen(engine, "after_cursor_execute", _after)
    event.listen(engine, "handle_error", _failed)
    event.listen(engine, "begin", lambda conn: _marker("BEGIN"))
    event.listen(engine, "commit", lambda conn: _marker("COMMIT"))
    event.listen(engine, "rollback", lambda conn: _marker("ROLLBACK"))
    event.listen(engine, "savepoint", lambda conn, name: _marker(f"SAVEPOINT {name}"))
    event.listen(
        engine, "rollback_savepoint", lambda conn, name, ctx: _marker(f"ROLLBACK TO SAVEPOINT {name}")
    )
    event.listen(engine, "release_savepoint", lambda conn, name, ctx: _marker(f"RELEASE SAVEPOINT {name}"))
    _installed.add(engine)
    return engine


def _marker(sql: str) -> None:
    capture = _current.get()
    if capture is not None:
        capture.add(Statement(sql=sql, parameters=None, duration_ms=None, rowcount=None, kind="transaction"))


def _before(conn, cursor, statement, parameters, context, executemany) -> None:
    if _current.get() is not None:
        conn.info.setdefault(_STARTED, []).append(time.perf_counter())


def _after(conn, cursor, statement, parameters, context, executemany) -> None:
    capture = _current.get()
    if capture is None:
        return
    started = conn.info[_STARTED].pop()
    capture.add(
        Statement(
            sql=statement,
            parameters=_copy(parameters),
            duration_ms=(time.perf_counter() - started) * 1000,
            rowcount=cursor.rowcount if cursor.rowcount is not None and cursor.rowcount >= 0 else None,
            kind=_kind(statement),
            batches=len(parameters) if executemany and parameters is not None else 1,
            main=bool(context is not None and context.execution_options.get(MAIN_OPTION)),
        )
    )


def _failed(exception_context) -> None:
    """A statement that raised still went to the server: record it, without a rowcount."""
    capture = _current.get()
    conn = exception_context.connection
    if capture is None or conn is None or exception_context.statement is None:
        return
    starts = conn.info.get(_STARTED) or [time.perf_counter()]
    started = starts.pop()
    capture.add(
        Statement(
            sql=exception_context.statement,
            parameters=_copy(exception_context.parameters),
            duration_ms=(time.perf_counter() - started) * 1000,
            rowcount=None,
            kind=_kind(exception_context.statement),
        )
    )


def _kind(statement: str) -> StatementKind:
    head = statement.lstrip()[:8].upper()
    if head.startswith("EXPLAIN"):
        return "explain"
    if head.startswith("COPY"):
        return "copy"
    return "query"


def _copy(parameters: Any) -> Any:
    """Detach parameters from the driver's objects so later mutation cannot rewrite history."""
    if isinstance(parameters, dict):
        return dict(parameters)
    # A tuple (one execution's positional values) stays a tuple: a list is what an executemany's
    # parameter sets arrive as, and the runner tells the two apart by that.
    if isinstance(parameters, tuple):
        return tuple(_copy(p) for p in parameters)
    if isinstance(parameters, list):
        return [_copy(p) for p in parameters]
    return parameters
