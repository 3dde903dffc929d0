"""Efficient exists and count: let Postgres answer, do not ship the rows.

Reach for it for a guard clause ("is there any admin?"), a badge count, a pagination total.
Loading the rows to count them in Python drags every match over the wire and builds an object for
each; COUNT sends back one number, and EXISTS can stop at the first match it finds.
"""

from __future__ import annotations

from sqlalchemy import exists, func, select

from recipes import params
from recipes.base import Cost, Param, Recipe, Rows
from recipes.datasets import USERS, User
from recipes.notes import plan_of

recipe = Recipe(
    slug="exists-count",
    title="Efficient exists and count",
    section="Reading",
    summary=__doc__,
    measure_memory=True,
    params=(
        params.rows(100_000, min=1_000, max=1_000_000, table="users"),
        Param(
            "match",
            "int",
            10,
            label="Matching rows (%)",
            min=0,
            max=100,
            sweepable=True,
            help="Share of users whose role is 'admin'.",
        ),
    ),
    docs=(
        (
            "PostgreSQL: EXISTS",
            "https://www.postgresql.org/docs/current/functions-subquery.html#FUNCTIONS-SUBQUERY-EXISTS",
        ),
        (
            "PostgreSQL: aggregate functions",
            "https://www.postgresql.org/docs/current/functions-aggregate.html",
        ),
        (
            "SQLAlchemy: exists()",
            "https://docs.sqlalchemy.org/en/20/core/selectable.html#sqlalchemy.sql.expression.exists",
        ),
    ),
)


MAX_OBJECTS = 100_000


@recipe.cost
def cost(variant, p):
    matches = p.rows * p.match // 100
    return Cost(statements=1, rows=matches if variant == "len-all" else 1)


@recipe.guard
def limits(variant, p):
    matches = p.rows * p.match // 100
    if variant == "len-all" and matches > MAX_OBJECTS:
        return {
            "match": f"len-all would build {matches:,} ORM objects; one run may build at most "
            f"{MAX_OBJECTS:,}. Lower rows or match (the trap shows long before), or run count/exists."
        }
    return {}


@recipe.setup
def prepare(setup, p):
    setup.dataset(USERS, rows=p.rows, match=p.match)


@recipe.variant
def len_all(run, p):
    """len(session.scalars(...).all()): load every match to count it (the trap)"""
    with run.session() as session:
        admins = session.scalars(run.main(select(User).where(User.role == "admin"))).all()
        answer = len(admins)
    return Rows(("admins",), [(answer,)])


@recipe.variant
def count(run, p):
    """SELECT count(*): Postgres counts, one integer comes back"""
    with run.session() as session:
        answer = session.scalar(run.main(select(func.count()).select_from(User).where(User.role == "admin")))
    return Rows(("admins",), [(answer,)])


@recipe.variant(slug="exists")
def exists_(run, p):
    """SELECT EXISTS (…): stops at the first match, one boolean comes back"""
    with run.session() as session:
        answer = session.scalar(run.main(select(exists().where(User.role == "admin"))))
    return Rows(("any admin?",), [(answer,)])


@recipe.notes
def notes(result):
    queries = [s for s in result.statements if s.kind == "query"]
    wire = sum(s.rowcount or 0 for s in queries)
    lines = [f"{wire:,} row{'s' if wire != 1 else ''} crossed the wire for one answer."]
    peak = result.metrics.get("python_peak_kb")
    if peak is not None:
        lines.append(f"Python allocated up to {peak:,.0f} KB while the variant ran.")
    summary = plan_of(result)
    if summary is not None:
        scan = summary.key_scan.label if summary.key_scan else "no scan"
        lines.append(f"The scan read {summary.rows_read:,} rows ({scan}) in {summary.execution_ms:.2f} ms.")
    return lines
