"""The one way a recipe runs: prepare, capture, run the variant, EXPLAIN the main statement."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

from psycopg import pq
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from playground.running import deadline
from playground.running.capture import Capture, instrument, record
from playground.running.deadline import RunStopped, Watch
from recipes.base import Params, Recipe, Rows, VariantFunc
from recipes.context import Run, Setup
from recipes.results import Plan, RunResult, Statement, TableRows, jsonable

EXPLAIN_JSON = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
EXPLAIN_TEXT = "EXPLAIN (ANALYZE, BUFFERS) "


class SetupError(Exception):
    """The sandbox could not be prepared for the run (a limit hit, a timeout)."""


def run(
    *,
    recipe: Recipe,
    variant: str,
    params: Mapping[str, Any],
    engine: Engine,
    max_rows: int = 50,
    watch: Watch | None = None,
) -> RunResult:
    """Run one variant of `recipe` on `engine` (a sandbox) and measure everything it sent.

    `params` are already validated; missing ones take their defaults. `watch`, when given, bounds
    the whole run (setup, variant, EXPLAIN): its deadline, its client, its statement count.
    """
    p = Params({**recipe.defaults(), **params})
    with watch if watch is not None else nullcontext():
        setup = prepare(recipe, p, engine)
        with Capture() as capture:
            context = Run(
                engine, setup.prepared, instrument=instrument, recorder=record, statements=capture.statements
            )
            rows, error, elapsed_ms = _variant(recipe, recipe.variants[variant].func, context, p)
            stopped = watch.reason if watch is not None else None
            if stopped is not None:  # whatever the variant made of a cancelled statement
                error = stopped
            plan = explain(engine, capture) if capture.main is not None and stopped is None else None
        if recipe.measure_memory and error is None:
            context.metrics.update(memory_pass(recipe.variants[variant].func, p, engine, setup))

    statements = capture.statements
    variant_statements = [s for s in statements if s.kind in ("query", "copy")]
    result = RunResult(
        recipe=recipe.slug,
        variant=variant,
        params=jsonable(dict(p)),
        ok=error is None,
        error=error,
        rows=_table(rows, max_rows),
        statements=statements,
        query_count=len(variant_statements),
        plan=plan,
        elapsed_ms=round(elapsed_ms, 3),
        db_ms=round(sum(s.duration_ms or 0.0 for s in variant_statements), 3),
        metrics=jsonable(context.metrics),
        setup=setup.log,
    )
    notes = recipe.notes_hook(result) if recipe.notes_hook and stopped is None else []
    return replace(result, notes=notes)


def _variant(recipe: Recipe, func: Any, context: Run, p: Params) -> tuple[Rows | None, str | None, float]:
    """Call the variant, untraced: (rows, error, wall ms). Its own database errors are its result."""
    rows: Rows | None = None
    error: str | None = None
    started = time.perf_counter()
    try:
        rows = func(context, p)
        if context.error is not None:
            error = describe_error(context.error)
    except SQLAlchemyError as exc:
        error = describe_error(exc)
    except RunStopped as exc:
        error = str(exc)
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        context.close()
    return rows, error, elapsed_ms


def memory_pass(func: VariantFunc, p: Params, engine: Engine, setup: Setup) -> dict[str, Any]:
    """Run the variant once more with Python's allocation tracing on, for its memory peak alone.

    Tracing hooks every allocation and slows allocation-heavy code several times over, so the run
    whose times are shown is the untraced one, and this pass's own wall time is reported beside
    it (`traced_ms`). Its statements repeat the run's: they are counted, not listed. The variant
    runs twice, so a recipe that measures memory must only read. The pass is inside the run's
    watch: the deadline and the statement cap bound both passes together.
    """
    with Capture() as capture:
        context = Run(
            engine, setup.prepared, instrument=instrument, recorder=record, statements=capture.statements
        )
        tracemalloc.start()
        started = time.perf_counter()
        try:
            func(context, p)
        except (SQLAlchemyError, RunStopped):
            return {}
        finally:
            traced_ms = (time.perf_counter() - started) * 1000
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            context.close()
    sent = sum(1 for s in capture.statements if s.kind in ("query", "copy"))
    return {
        "python_peak_kb": round(peak / 1024, 1),
        "traced_ms": round(traced_ms, 3),
        "traced_statements": sent,
    }


def prepare(recipe: Recipe, p: Params, engine: Engine) -> Setup:
    """Run the recipe's setup in one transaction, outside any capture."""
    try:
        with engine.begin() as conn:
            setup = Setup(conn)
            if recipe.setup_hook is not None:
                recipe.setup_hook(setup, p)
            setup.analyze()  # tables a setup seeded without re-indexing them afterwards
    except (SQLAlchemyError, RunStopped) as exc:
        watch = deadline.current()
        why = watch.reason if watch is not None and watch.reason else describe_error(exc)
        raise SetupError(f"Preparing the sandbox failed: {why}") from exc
    return setup


def explain(engine: Engine, capture: Capture) -> Plan | None:
    """EXPLAIN ANALYZE the main statement as it was sent, in transactions that are rolled back.

    ANALYZE executes the statement, so a write is undone by the rollback. The JSON and the text
    forms come from two separate executions so that a write never sees its own first run. Both
    go in one round trip (psycopg's pipeline mode): BEGIN, EXPLAIN, ROLLBACK twice, then one
    sync. Each EXPLAIN's time in the statement list is the server's own (planning and
    execution, as the plan reports them), since one round trip carries both.
    """
    main = capture.main
    assert main is not None
    if isinstance(main.parameters, list):  # executemany: nothing single to explain
        return None
    watch = deadline.current()
    try:
        if watch is not None:
            watch.check()  # sent straight through the driver: no listener refuses it
    except RunStopped as exc:
        return Plan(json=[], text=f"EXPLAIN was not run: {exc}")
    started = time.perf_counter()
    outputs: list[list[Any]] = []
    with engine.connect() as conn:
        try:
            outputs = _explain_pipelined(conn.connection.dbapi_connection, main)
        except Exception as exc:  # a timeout, a lock, the deadline: show the run without its plan
            why = watch.reason if watch is not None and watch.reason else describe_error(exc)
            return Plan(json=[], text=f"EXPLAIN failed: {why}")
        finally:
            wall_ms = (time.perf_counter() - started) * 1000
            for i, prefix in enumerate((EXPLAIN_JSON, EXPLAIN_TEXT)):
                took = _server_ms(outputs[i]) if i < len(outputs) else None
                capture.add(_explain_statement(prefix + main.sql, main.parameters, took or wall_ms))
    json_rows, text_rows = outputs
    plan_json = json_rows[0][0]
    if isinstance(plan_json, str):
        plan_json = json.loads(plan_json)
    return Plan(json=plan_json, text="\n".join(r[0] for r in text_rows))


def _explain_pipelined(dbapi: Any, main: Statement) -> list[list[Any]]:
    """Both EXPLAINs' rows, each in a transaction of its own, sent in one pipeline.

    The connection is put in autocommit for the pipeline so that psycopg adds no BEGIN of its
    own; the pipeline's BEGIN and ROLLBACK statements are the transactions. If an EXPLAIN fails,
    the server skips the rest of the pipeline and its transaction is rolled back here.
    """
    dbapi.autocommit = True
    try:
        cursors = []
        with dbapi.pipeline():
            for prefix in (EXPLAIN_JSON, EXPLAIN_TEXT):
                dbapi.execute("BEGIN")
                cursor = dbapi.cursor()
                cursor.execute(prefix + main.sql, main.parameters)
                cursors.append(cursor)
                dbapi.execute("ROLLBACK")
        return [cursor.fetchall() for cursor in cursors]
    finally:
        if not dbapi.closed and dbapi.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            dbapi.execute("ROLLBACK")
        dbapi.autocommit = False


def _server_ms(rows: list[Any]) -> float | None:
    """Planning plus execution time as an EXPLAIN ANALYZE reports them, JSON or text."""
    first = rows[0][0] if rows else None
    if isinstance(first, str) and first.startswith("["):  # FORMAT JSON, not decoded by the driver
        first = json.loads(first)
    if isinstance(first, list):  # FORMAT JSON: one row, one document
        return float(first[0].get("Planning Time", 0.0)) + float(first[0].get("Execution Time", 0.0))
    times = [
        float(line.split(":", 1)[1].split()[0])
        for (line,) in rows
        if line.startswith(("Planning Time:", "Execution Time:"))
    ]
    return sum(times) if times else None


def _explain_statement(sql: str, parameters: Any, duration_ms: float) -> Statement:
    return Statement(
        sql=sql,
        parameters=parameters,
        duration_ms=duration_ms,
        rowcount=None,
        kind="explain",
    )


def describe_error(exc: BaseException) -> str:
    """The database's or SQLAlchemy's own message, without SQLAlchemy's trailing links."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig = exc.orig
        code = getattr(orig, "sqlstate", None)
        message = str(orig).strip()
        return f"{type(orig).__name__}{f' (SQLSTATE {code})' if code else ''}: {message}"
    message = str(exc).split("(Background on this error")[0].strip()
    return f"{type(exc).__name__}: {message}"


def _table(rows: Rows | None, max_rows: int) -> TableRows | None:
    if rows is None:
        return None
    shown = rows.data[:max_rows]
    return TableRows(
        columns=list(rows.columns),
        data=jsonable([list(r) for r in shown]),
        total=len(rows.data),
        truncated=len(rows.data) > max_rows,
    )
