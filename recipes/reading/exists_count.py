"""Efficient exists and count: let Postgres answer, do not ship the rows.

Reach for it for a guard clause ("is there any admin?"), a badge count, a pagination total.
Loading the rows to count them in Python drags every match over the wire and builds an object for
each; COUNT sends back one number, and EXISTS one boolean as soon as its scan meets a match. How
soon that is depends on the scan: a rare value with no index to find it may sit at the end of a
table read from the start.
"""

from __future__ import annotations

from sqlalchemy import exists, func, select, text

from recipes import params
from recipes.base import Cost, Param, Recipe, Rows
from recipes.datasets import USERS, User
from recipes.learning import Challenge, Check, Question
from recipes.notes import plan_of

LOOKED_IN = {"admins": "ix_users_role", "newest-user": "ix_users_name"}
"""What a run looks for → the index on the column it looks in."""

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
        Param(
            "look_for",
            "choice",
            "admins",
            label="Look for",
            choices=tuple(LOOKED_IN),
            help="admins: role = 'admin', the share above, spread through the table. newest-user: the "
            "name of the user inserted last, one row at the very end of the table.",
        ),
        Param(
            "index",
            "bool",
            False,
            label="Index the column looked in",
            help="A B-tree on role (admins) or on name (newest-user).",
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
    matches = p.rows * p.match // 100 if p.look_for == "admins" else 1
    if variant == "len-all" and matches > MAX_OBJECTS:
        return {
            "match": f"len-all would build {matches:,} ORM objects; one run may build at most "
            f"{MAX_OBJECTS:,}. Lower rows or match (the trap shows long before), or run count/exists."
        }
    return {}


@recipe.setup
def prepare(setup, p):
    setup.dataset(USERS, rows=p.rows, match=p.match)
    setup.indexes(USERS, {LOOKED_IN[p.look_for]} if p.index else set())
    newest = setup.conn.execute(text("SELECT name FROM users ORDER BY id DESC LIMIT 1")).scalar()
    setup.prepared["newest_name"] = newest


@recipe.helper
def looked_for(run, p):
    """The condition a row must meet: role = 'admin', or the name of the user inserted last."""
    if p.look_for == "newest-user":
        return User.name == run.prepared["newest_name"]
    return User.role == "admin"


@recipe.variant
def len_all(run, p):
    """len(session.scalars(...).all()): load every match to count it (the trap)"""
    with run.session() as session:
        matches = session.scalars(run.main(select(User).where(looked_for(run, p)))).all()
        answer = len(matches)
    return Rows(("matches",), [(answer,)])


@recipe.variant
def count(run, p):
    """SELECT count(*): Postgres counts, one integer comes back"""
    with run.session() as session:
        answer = session.scalar(run.main(select(func.count()).select_from(User).where(looked_for(run, p))))
    return Rows(("matches",), [(answer,)])


@recipe.variant(slug="exists")
def exists_(run, p):
    """SELECT EXISTS (…): one boolean comes back; its scan stops at the first match it meets"""
    with run.session() as session:
        answer = session.scalar(run.main(select(exists().where(looked_for(run, p)))))
    return Rows(("any match?",), [(answer,)])


@recipe.notes
def notes(result):
    queries = [s for s in result.statements if s.kind == "query"]
    wire = sum(s.rowcount or 0 for s in queries)
    lines = [f"{wire:,} row{'s' if wire != 1 else ''} crossed the wire for one answer."]
    if (line := memory_line(result)) is not None:
        lines.append(line)
    summary = plan_of(result)
    if summary is not None:
        scan = summary.key_scan.label if summary.key_scan else "no scan"
        read, ms = summary.rows_read, summary.execution_ms
        if result.variant == "exists" and result.rows and result.rows.data:
            table = result.params["rows"]
            if result.rows.data[0][0]:
                lines.append(
                    f"EXISTS stopped at its first match, found after reading {read:,} of the {table:,} rows "
                    f"({scan}, {ms:.2f} ms)."
                )
            else:
                lines.append(f"No match: EXISTS read {read:,} rows ({scan}, {ms:.2f} ms) to be sure of it.")
        else:
            lines.append(f"The scan read {read:,} row{'s' if read != 1 else ''} ({scan}) in {ms:.2f} ms.")
    return lines


def memory_line(result):
    """The Python peak, and what measuring it cost: it comes from a second, traced pass."""
    peak, traced = result.metrics.get("python_peak_kb"), result.metrics.get("traced_ms")
    if peak is None or traced is None:
        return None
    ratio = traced / result.elapsed_ms if result.elapsed_ms else 0
    slower = f": tracing made it ×{ratio:.1f} slower" if ratio >= 1.2 else ""
    return (
        f"Python allocated up to {peak:,.0f} KB, measured in a second pass of the same code with allocation "
        f"tracing on, which took {traced:,.1f} ms against this run's {result.elapsed_ms:,.1f} ms{slower}. "
        "The times shown are the untraced run's."
    )


# --- questions and challenges ---
recipe.learn(
    Question(
        "wire-rows",
        "len-all counts the admins among {rows:,} users ({match}% are admins). How many rows will cross "
        "the wire?",
        answer="rows_fetched",
        variant="len-all",
        why=lambda r: (
            f"Every matching row is sent and built into an object, only to be counted: "
            f"{r.figures.rows_fetched:,} rows for one number."
        ),
    ),
    Challenge(
        "stop-early",
        'Answer "is there any admin?" reading at most 100 rows and fetching one',
        checks=(Check("rows_read", at_most=100), Check("rows_fetched", at_most=1)),
    ),
)
