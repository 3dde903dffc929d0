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
from itertools import islice
from typing import Any

from sqlalchemy import Engine, event

from playground.running import deadline
from playground.running.deadline import RunStopped
from recipes.context import KIND_OPTION, MAIN_OPTION
from recipes.results import Statement, StatementKind

_current: ContextVar[Capture | None] = ContextVar("playground_capture", default=None)
_installed: weakref.WeakSet[Engine] = weakref.WeakSet()
_STARTED = "playground_started"

PARAMETER_SETS_KEPT = 3
"""Parameter sets of an executemany kept in the capture; the others are only counted."""
VALUES_KEPT = 60
"""Bound values of one statement kept (a multi-row INSERT can carry tens of thousands)."""
SQL_KEPT = 3000
"""Characters of SQL text kept. The main statement is always kept whole: EXPLAIN replays it."""


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


def instrument(engine: Engine) -> Engine:
    """Everything a sandbox engine carries: the run watch's listeners, then the capture's."""
    return install(deadline.install(engine))


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
    options = context.execution_options if context is not None else {}
    capture.add(
        _statement(
            statement,
            _sent(parameters, context),
            duration_ms=(time.perf_counter() - started) * 1000,
            rowcount=cursor.rowcount if cursor.rowcount is not None and cursor.rowcount >= 0 else None,
            batches=_parameter_sets(parameters, executemany),
            kind=options.get(KIND_OPTION),
            main=bool(options.get(MAIN_OPTION)),
            cache=_cache_stats(context),
        )
    )


def _sent(parameters: Any, context) -> Any:
    """None for a statement sent without parameters (`no_parameters`): the driver read its text
    as it is, `%` included, and so must the EXPLAIN that replays it and "edit as SQL"."""
    if not parameters and context is not None and context.no_parameters:
        return None
    return parameters


def _cache_stats(context) -> str | None:
    """SQLAlchemy's own words on its compiled-statement cache, as its engine log prints them
    ("cached since 2.1s ago", "generated in 0.00021s", "raw sql")."""
    stats = getattr(context, "_get_cache_stats", None)
    try:
        return stats().strip() if stats else None
    except Exception:  # an internal that changed shape: go without, never fail a run over it
        return None


def _failed(exception_context) -> None:
    """A statement that raised still went to the server: record it, without a rowcount.

    Not one the run's watch refused before it was sent (`RunStopped`): the capture's own
    `_before` never saw it either, as the watch's listener comes first.
    """
    capture = _current.get()
    conn = exception_context.connection
    if capture is None or conn is None or exception_context.statement is None:
        return
    if isinstance(exception_context.original_exception, RunStopped):
        return
    starts = conn.info.get(_STARTED) or [time.perf_counter()]
    started = starts.pop()
    execution = exception_context.execution_context
    options = execution.execution_options if execution is not None else {}
    capture.add(
        _statement(
            exception_context.statement,
            _sent(exception_context.parameters, execution),
            duration_ms=(time.perf_counter() - started) * 1000,
            rowcount=None,
            batches=_parameter_sets(exception_context.parameters, bool(execution and execution.executemany)),
            kind=options.get(KIND_OPTION),
        )
    )


def record(
    sql: str,
    parameters: Any = None,
    *,
    duration_ms: float,
    rowcount: int | None = None,
    kind: StatementKind = "copy",
    batches: int = 1,
) -> None:
    """Add a statement that bypassed SQLAlchemy's events (psycopg's COPY) to the active capture."""
    capture = _current.get()
    if capture is not None:
        statement = _statement(
            sql, parameters, duration_ms=duration_ms, rowcount=rowcount, kind=kind, batches=batches
        )
        capture.add(statement)


def _statement(
    sql: str,
    parameters: Any,
    *,
    duration_ms: float,
    rowcount: int | None,
    batches: int = 1,
    kind: StatementKind | None = None,
    main: bool = False,
    cache: str | None = None,
) -> Statement:
    """A Statement with big parameter lists and SQL texts cut down, unless it is the main one."""
    kept, omitted = (_copy(parameters), 0) if main else _trim(parameters)
    text = sql if main else _shorten(sql)
    return Statement(
        sql=text,
        parameters=kept,
        duration_ms=duration_ms,
        rowcount=rowcount,
        kind=kind or _kind(sql),
        batches=batches,
        main=main,
        parameters_omitted=omitted,
        cache=cache,
    )


def _shorten(sql: str) -> str:
    """Keep the head and the tail of a long text: a batched INSERT's VALUES list fills the middle,
    and what comes after it (RETURNING, ON CONFLICT) matters as much as the start."""
    if len(sql) <= SQL_KEPT:
        return sql
    tail = SQL_KEPT // 3
    head = SQL_KEPT - tail
    return f"{sql[:head]} … [{len(sql) - SQL_KEPT:,} characters left out] … {sql[-tail:]}"


def _parameter_sets(parameters: Any, executemany: bool) -> int:
    """How many rows' worth of parameters one driver call carried.

    A plain executemany hands the driver a list of sets. SQLAlchemy's "insertmanyvalues" instead
    folds a batch of rows into one multi-row INSERT executed once, its values in a single dict
    whose keys carry a `__<row>` suffix (`name__0`, `name__1`, …); the sets are counted from those.
    """
    if not executemany or parameters is None:
        return 1
    if isinstance(parameters, list):
        return len(parameters)
    if isinstance(parameters, dict):
        per_row = sum(1 for key in parameters if str(key).endswith("__0"))
        return len(parameters) // per_row if per_row else 1
    return 1


def _trim(parameters: Any) -> tuple[Any, int]:
    """Keep the first few parameter sets (or values) and count the rest."""
    if isinstance(parameters, list) and len(parameters) > PARAMETER_SETS_KEPT:
        return _copy(parameters[:PARAMETER_SETS_KEPT]), len(parameters) - PARAMETER_SETS_KEPT
    if isinstance(parameters, dict) and len(parameters) > VALUES_KEPT:
        return dict(islice(parameters.items(), VALUES_KEPT)), len(parameters) - VALUES_KEPT
    if isinstance(parameters, tuple) and len(parameters) > VALUES_KEPT:
        return _copy(parameters[:VALUES_KEPT]), len(parameters) - VALUES_KEPT
    return _copy(parameters), 0


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
