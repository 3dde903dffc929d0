"""Prepared statements and generic plans: the same query, slower after a few calls.

Reach for it when a query is fast in psql and slow in the application, and only after the
application has been running a while. psycopg 3 prepares a statement on the server once one
connection has run it `prepare_threshold` times (5 unless told otherwise); Postgres plans the
first executions of a prepared statement for the values given, then may settle on one generic
plan that ignores them. On a skewed column (a few 'pending' jobs at the end of a table of 'done'
ones) that plan is made for a typical value, not for the rare one asked for. Keep automatic
preparing off for such a query, or have Postgres plan every execution for its values.
"""

from __future__ import annotations

import statistics
import time

from sqlalchemy import BigInteger, Identity, Text, exists, select, text
from sqlalchemy.orm import Mapped, mapped_column

from recipes import params
from recipes.base import Param, Recipe, Rows
from recipes.datasets import Base, Dataset
from recipes.learning import Challenge, Check, Question
from recipes.notes import plan_of
from recipes.plan import summarize


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[str] = mapped_column(Text, index=True)


# Every job is 'done' except the newest `pending`, at the end of the table.
JOBS = Dataset(
    name="jobs",
    models=(Job,),
    seed_sql=(
        """INSERT INTO jobs (id, status) OVERRIDING SYSTEM VALUE
           SELECT i, CASE WHEN i > :rows - :pending THEN 'pending' ELSE 'done' END
           FROM generate_series(1, :rows) AS i""",
    ),
)

recipe = Recipe(
    slug="prepared-statements",
    title="Prepared statements and generic plans",
    section="Performance",
    summary=__doc__,
    params=(
        params.rows(100_000, min=1_000, max=1_000_000, table="jobs"),
        Param(
            "pending",
            "int",
            10,
            label="Pending jobs",
            min=0,
            max=1_000,
            help="Jobs still 'pending': the newest rows, at the end of the table. The rest are 'done'.",
        ),
        Param(
            "calls",
            "int",
            15,
            label="Calls",
            min=1,
            max=50,
            sweepable=True,
            help="How many times one connection asks whether a job is pending.",
        ),
    ),
    docs=(
        ("psycopg: prepared statements", "https://www.psycopg.org/psycopg3/docs/advanced/prepare.html"),
        (
            "PostgreSQL: PREPARE, custom and generic plans",
            "https://www.postgresql.org/docs/current/sql-prepare.html",
        ),
        (
            "PostgreSQL: plan_cache_mode",
            "https://www.postgresql.org/docs/current/runtime-config-query.html#GUC-PLAN-CACHE-MODE",
        ),
        (
            "PostgreSQL: pg_prepared_statements",
            "https://www.postgresql.org/docs/current/view-pg-prepared-statements.html",
        ),
    ),
)

PLANS = text(
    "SELECT name, custom_plans, generic_plans FROM pg_prepared_statements "
    "WHERE starts_with(statement, 'SELECT EXISTS')"
)
"""The server's own count of the plans a prepared EXISTS got (Postgres 14+), read on its connection."""


@recipe.setup
def prepare(setup, p):
    setup.dataset(JOBS, rows=p.rows, pending=p.pending)


@recipe.helper
def poll(run, p, conn, query):
    """Send `query` p.calls times on one connection, timing each call and reading after it which
    plan the server gave it. The last call is the one EXPLAINed (on a fresh connection)."""
    calls, before = [], (0, 0)
    for call in range(1, p.calls + 1):
        started = time.perf_counter()
        conn.execute(run.main(query) if call == p.calls else query).scalar()
        ms = (time.perf_counter() - started) * 1000
        prepared = conn.execute(PLANS).first()
        if prepared is None:
            plan, counts = "unprepared", (0, 0)
        else:
            counts = (prepared.custom_plans, prepared.generic_plans)
            plan = "generic" if counts[1] > before[1] else "custom"
        calls.append((call, round(ms, 3), plan, *counts))
        before = counts
    run.metric("per_call", [[call, ms, plan] for call, ms, plan, *_ in calls])
    generic = [call for call, _, plan, *_ in calls if plan == "generic"]
    run.metric("generic_calls", len(generic))
    run.metric("first_generic_call", generic[0] if generic else 0)
    if prepared is not None:
        explained = conn.execute(
            text(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE \"{prepared.name}\"('pending')")
        )
        summary = summarize(explained.scalar())
        read = summary.rows_read
        run.metric("cached_plan", f"{summary.key_scan.label}: {read:,} row{'s' if read != 1 else ''} read")
        run.metric("cached_plan_ms", round(summary.execution_ms, 3))
    return Rows(("call", "ms", "plan", "custom_plans", "generic_plans"), calls)


@recipe.variant
def auto_prepare(run, p):
    """psycopg's automatic prepare on a skewed column: fast, then slow on the same connection (the trap)"""
    engine = run.engine_with(connect_args={"prepare_threshold": 5})  # psycopg's own default
    any_pending = select(exists().where(Job.status == "pending"))
    with engine.connect() as conn:
        return poll(run, p, conn, any_pending)


@recipe.variant
def never_prepare(run, p):
    """prepare_threshold=None: never prepared, every call planned for 'pending'"""
    engine = run.engine_with(connect_args={"prepare_threshold": None})
    any_pending = select(exists().where(Job.status == "pending"))
    with engine.connect() as conn:
        return poll(run, p, conn, any_pending)


@recipe.variant
def force_custom_plan(run, p):
    """plan_cache_mode = force_custom_plan: prepared, yet planned for its value every time"""
    engine = run.engine_with(connect_args={"prepare_threshold": 5})
    any_pending = select(exists().where(Job.status == "pending"))
    with engine.connect() as conn:
        conn.execute(text("SET plan_cache_mode = force_custom_plan"))  # this connection only
        return poll(run, p, conn, any_pending)


@recipe.notes
def notes(result):
    calls = result.metrics.get("per_call") or []
    if not calls:
        return []
    lines = ["; ".join(stretches(calls)) + "."]
    generic = [ms for _, ms, plan in calls if plan == "generic"]
    others = [ms for _, ms, plan in calls if plan != "generic"]
    if generic and others:
        slow, fast = statistics.median(generic), statistics.median(others)
        lines.append(
            f"Median per call: {fast:.2f} ms while planned for 'pending', "
            f"{slow:.2f} ms with the generic plan (×{slow / fast:.0f})."
        )
    else:
        times = [ms for _, ms, _ in calls]
        lines.append(f"Median per call {statistics.median(times):.2f} ms, slowest {max(times):.2f} ms.")
    cached = result.metrics.get("cached_plan")
    summary = plan_of(result)
    if cached and summary is not None and summary.key_scan is not None:
        lines.append(
            f"The plan below is the last call replayed on a fresh connection: {summary.key_scan.label}, "
            f"{summary.rows_read:,} row{'s' if summary.rows_read != 1 else ''} read, "
            f"{summary.execution_ms:.2f} ms. On the calls' own connection "
            f"EXPLAIN EXECUTE gives what the plan cache holds: {cached}, "
            f"{result.metrics['cached_plan_ms']:.2f} ms."
        )
    return lines


def stretches(calls):
    """'calls 1–5: unprepared', 'calls 6–10: custom plan', …: runs of calls that got the same plan."""
    words = {"unprepared": "sent unprepared", "custom": "custom plan", "generic": "generic plan"}
    runs = []
    for call, _, plan in calls:
        if runs and runs[-1][2] == plan:
            runs[-1][1] = call
        else:
            runs.append([call, call, plan])
    return [
        f"call{'s' if a != b else ''} {a}{f'–{b}' if a != b else ''}: {words[plan]}" for a, b, plan in runs
    ]


# --- questions and challenges ---
recipe.learn(
    Question(
        "first-generic",
        "psycopg prepares the statement on its 5th call; Postgres plans the first 5 executions of a "
        "prepared statement for their values. Over {calls} calls, which call is the first to get the "
        "generic plan (0 if none)?",
        answer="metric:first_generic_call",
        variant="auto-prepare",
        why=lambda r: (
            f"{r.metrics['generic_calls']} of {r.params['calls']} calls ran the generic plan"
            + (f", from call {r.metrics['first_generic_call']} on." if r.metrics["generic_calls"] else ".")
        ),
    ),
    Challenge(
        "no-generic-plan",
        "Send the lookup {calls} times on one connection without any call running the generic plan",
        checks=(Check("metric:generic_calls", equals=0), Check("errors", at_most=0)),
    ),
)
