"""SQL a person types, run as a recipe so that it goes through the one runner.

The scratchpad is a recipe of its own (not on the shelf): its one parameter is the text, its one
variant checks it with `recipes.sql.check` and sends each statement in its own transaction. The
runner then does for it what it does for every recipe: capture, timings, the plan of the main
statement (the last SELECT), limits, history. Each statement's own result is in
`metrics["results"]`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from recipes.base import Param, Recipe, Rows
from recipes.context import KIND_OPTION, MAIN_OPTION, Run, Setup
from recipes.results import jsonable
from recipes.sql import Checked, Limits, SqlRefused, check

SLUG = "sql"
MAX_LENGTH = 20_000
ROWS_KEPT = 200
"""Rows of one statement's result kept."""
DEADLINE_TIMEOUTS = 3
"""Statement timeouts a whole submission may take: no statement starts after that."""
DEFAULT_TIMEOUT_MS = 10_000
"""The statement timeout assumed when the connection does not say."""
ROWS_COUNTED = 100_000
"""Rows of one statement's result counted; a SELECT that returns more is stopped there."""
CELL_KEPT = 10_000
"""Characters (or bytes) of one value kept: `repeat('x', 50000000)` is one row, not a small one."""
REFERENCE = "reference"
"""The key of `Run.prepared` holding a reference query's rows (see `on_data_of`)."""

recipe = Recipe(
    slug=SLUG,
    title="SQL scratchpad",
    section="Reading",
    summary="Your own SQL in your sandbox: every statement with its rows, timing and plan.",
    params=(
        Param(
            "sql",
            "str",
            "SELECT 1",
            label="SQL",
            help="One or more statements separated by semicolons.",
            max_length=MAX_LENGTH,
        ),
    ),
)


@dataclass(frozen=True)
class StatementResult:
    """What one statement of a submission gave."""

    sql: str
    """The statement as typed."""
    kind: str
    """Its kind, e.g. "SELECT"."""
    columns: list[str]
    """Column names of its rows (empty for a statement that returns none)."""
    rows: list[list[Any]]
    """Its first ROWS_KEPT rows."""
    rowcount: int | None
    """Rows it returned or changed, as the server reports it."""
    duration_ms: float
    """Wall time of its execution, fetching included."""
    error: str | None = None
    """The server's message when it failed (the statements after it did not run)."""
    more: bool = False
    """It returned more than ROWS_COUNTED rows: `rowcount` stops there."""


def limits_for(run: Run) -> Limits:
    """The gate's limits for a sandbox: its schema is its role's name."""
    return Limits(schema=str(run.engine.url.username), max_length=MAX_LENGTH)


def deadline_seconds(run: Run) -> float:
    """How long a submission may run: DEADLINE_TIMEOUTS statement timeouts of the sandbox role,
    read from the connection options (sending a statement to ask would add one to the run)."""
    return deadline_seconds_for_url(run.engine.url)


def deadline_seconds_for_url(url: Any) -> float:
    """`deadline_seconds` of a sandbox engine's URL."""
    options = str(url.query.get("options", ""))
    found = re.search(r"statement_timeout=(\d+)", options)
    timeout_ms = int(found.group(1)) if found else DEFAULT_TIMEOUT_MS
    return DEADLINE_TIMEOUTS * timeout_ms / 1000


@recipe.variant(slug="sql")
def run_sql(run: Run, p) -> Rows | None:
    """Check the whole text, then run each statement in its own transaction, in order."""
    try:
        statements = check(p.sql, limits_for(run))
    except SqlRefused as exc:
        run.fail(exc)
        return None
    main = next((s for s in reversed(statements) if s.kind == "SELECT" and s.reads_only), None)
    results: list[StatementResult] = []
    last: Rows | None = None
    deadline = time.perf_counter() + deadline_seconds(run)
    with run.connect() as conn:
        for number, statement in enumerate(statements, start=1):
            if time.perf_counter() > deadline:
                run.fail(RuntimeError(f"Out of time: statements {number} to {len(statements)} did not run."))
                break
            result, rows = _execute(conn, statement, main=statement is main)
            results.append(result)
            last = rows if rows is not None else last
            if result.error is not None:
                run.fail(RuntimeError(f"Statement {len(results)} failed: {result.error}"))
                break
    run.metric("results", [asdict(r) for r in results])
    reference = run.prepared.get(REFERENCE)
    if reference is not None:
        shown = next((r for r in reversed(results) if r.columns and r.error is None), None)
        same = shown is not None and [shown.rows, shown.rowcount] == [reference["rows"], reference["count"]]
        run.metric("same_rows", "yes" if same else "no")
    return last


def on_data_of(data: Recipe, reference: str | None = None) -> Recipe:
    """The scratchpad run on the data another recipe's setup seeds (its parameters beside the
    text): a challenge asking for SQL is about that recipe's tables. With `reference`, a SELECT
    that gives the rows wanted, its rows are read once the data is there, outside the capture,
    and the run's last result is compared with them (the metric `same_rows`)."""

    def prepare(setup: Setup, p) -> None:
        if data.setup_hook is not None:
            data.setup_hook(setup, p)
        if reference is not None:
            result = setup.conn.execution_options(no_parameters=True).exec_driver_sql(reference)
            rows = [list(_cut(r)) for r in result.fetchmany(ROWS_KEPT)]
            count, _ = _count(result, len(rows))
            setup.prepared[REFERENCE] = {"rows": jsonable(rows), "count": count}

    return replace(recipe, params=(*data.params, *recipe.params), setup_hook=prepare)


def _execute(conn, statement: Checked, *, main: bool) -> tuple[StatementResult, Rows | None]:
    started = time.perf_counter()
    # sent as typed (no parameters: psycopg reads no placeholders), and recorded as the person's
    # own statement whatever it starts with
    options: dict[str, Any] = {"no_parameters": True, KIND_OPTION: "query", MAIN_OPTION: main}
    rows = None
    try:
        with conn.begin():
            if statement.kind == "SELECT" and statement.reads_only:
                # a server-side cursor: a huge result streams past, never held in memory whole;
                # ROWS_KEPT rows a FETCH from the first one (SQLAlchemy's own buffer starts at one)
                options |= {"yield_per": ROWS_KEPT}
            result = conn.execution_options(**options).exec_driver_sql(statement.sql)
            more = False
            if result.returns_rows:
                columns = tuple(result.keys())
                rows = Rows(columns, [_cut(r) for r in result.fetchmany(ROWS_KEPT)])
                if len(rows.data) < ROWS_KEPT:  # a FETCH that came back short: nothing is left
                    rowcount = len(rows.data)
                else:
                    rowcount, more = _count(result, len(rows.data))
            else:
                rowcount = result.rowcount if result.rowcount >= 0 else None
    except SQLAlchemyError as exc:
        message = str(getattr(exc, "orig", exc) or exc).strip()
        return _result(statement, started, None, None, error=message), None
    return _result(statement, started, rows, rowcount, more=more), rows


def _cut(row: Any) -> tuple[Any, ...]:
    """A row with each long text or binary value cut to CELL_KEPT, saying how much was left out."""
    return tuple(
        v[:CELL_KEPT] + f" … [{len(v) - CELL_KEPT:,} characters left out]"
        if isinstance(v, str) and len(v) > CELL_KEPT
        else (bytes(v[:CELL_KEPT]) if isinstance(v, bytes | memoryview) and len(v) > CELL_KEPT else v)
        for v in row
    )


def _count(result, counted: int) -> tuple[int, bool]:
    """Rows of `result` left after the first `counted`, up to ROWS_COUNTED in all."""
    for _ in result:
        counted += 1
        if counted >= ROWS_COUNTED:
            return counted, True
    return counted, False


def _result(statement: Checked, started: float, rows: Rows | None, rowcount, **extra):
    return StatementResult(
        sql=statement.sql,
        kind=statement.kind,
        columns=list(rows.columns) if rows else [],
        rows=jsonable([list(r) for r in rows.data]) if rows else [],
        rowcount=rowcount,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        **extra,
    )


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


def inline(sql: str, parameters: Any) -> str | None:
    """`sql` as the driver received it with its bound values written in as SQL literals, ready to
    edit and run in the scratchpad; None when it cannot be one statement (an executemany).
    A statement sent without parameters (None) is its own text: the driver read no placeholder."""
    if parameters is None:
        return sql
    if isinstance(parameters, list) and parameters and isinstance(parameters[0], (dict, list, tuple)):
        return None
    positional = iter(parameters if isinstance(parameters, (list, tuple)) else ())
    named = parameters if isinstance(parameters, dict) else {}

    def value(match: re.Match) -> str:
        if match.group(0) == "%%":
            return "%"
        if match.group(1) is not None:
            return literal(named.get(match.group(1)))
        return literal(next(positional, None))

    return _PLACEHOLDER.sub(value, sql)


def literal(value: Any) -> str:
    """One value as a SQL literal (standard_conforming_strings is on: only quotes are doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "ARRAY[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        value = json.dumps(value)
    return "'" + str(value).replace("'", "''") + "'"
