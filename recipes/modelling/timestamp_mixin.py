"""Timestamp mixin: created_at and updated_at on every model.

Reach for it on nearly every table: you will want to know when a row appeared and when it last
changed, for audits, for "recently edited" lists, for syncing. Declare the two columns once in a
mixin; `server_default=now()` lets Postgres fill them on any INSERT, and `onupdate=now()` asks
SQLAlchemy to add `updated_at = now()` to the UPDATEs it writes. Which UPDATEs those are is the
question: run each write path and compare the row's timestamps before and after. Only a trigger
covers writes that never go through SQLAlchemy.

The table here, `memos`, is rebuilt before every run with timestamps from 2024, so a bump stands out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Text, func, select, text, update
from sqlalchemy.orm import Mapped, mapped_column

from recipes import params
from recipes.base import Recipe, Rows
from recipes.datasets import REGISTRY_DDL, Base, Dataset
from recipes.learning import Challenge, Check, Question


class TimestampMixin:
    """created_at / updated_at filled by Postgres; updated_at also set by SQLAlchemy's UPDATEs."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Memo(TimestampMixin, Base):
    __tablename__ = "memos"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(Text)


TABLE_ROWS = 100
MEMOS = Dataset(
    name="memos",
    models=(Memo,),
    seed_sql=(
        """INSERT INTO memos (id, title, created_at, updated_at) OVERRIDING SYSTEM VALUE
           SELECT i, 'Memo ' || i, ts, ts
           FROM generate_series(1, :rows) AS i,
                LATERAL (SELECT timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour' AS ts) AS t""",
    ),
)

recipe = Recipe(
    slug="timestamp-mixin",
    title="Timestamp mixin",
    section="Modelling",
    summary=__doc__,
    params=(
        params.rows(
            5,
            min=1,
            max=TABLE_ROWS,
            label="Rows to touch",
            sweepable=False,
            help=f"How many of the table's {TABLE_ROWS} memos the write changes (or how many to insert).",
        ),
    ),
    docs=(
        (
            "SQLAlchemy: column INSERT/UPDATE defaults",
            "https://docs.sqlalchemy.org/en/20/core/defaults.html#python-executed-functions",
        ),
        (
            "SQLAlchemy: ORM-enabled UPDATE",
            "https://docs.sqlalchemy.org/en/20/orm/queryguide/dml.html#orm-update-and-delete-with-custom-where-criteria",
        ),
        (
            "PostgreSQL: now() is the transaction's start",
            "https://www.postgresql.org/docs/current/functions-datetime.html#FUNCTIONS-DATETIME-CURRENT",
        ),
        ("PostgreSQL: CREATE TRIGGER", "https://www.postgresql.org/docs/current/sql-createtrigger.html"),
    ),
)


@recipe.setup
def prepare(setup, p):
    # Rebuilt every time: the previous run's writes (and trigger) must not leak into this one.
    size = max(TABLE_ROWS, p.rows)
    with setup.step(f"rebuilt memos ({size} rows, timestamps from 2024)"):
        setup.conn.execute(text(REGISTRY_DDL))
        MEMOS.build(setup.conn, {"rows": size})


@recipe.helper
def stamps(session, ids, mark=None):
    """{id: (created_at, updated_at)} as stored right now; `mark` flags the read as the query."""
    stmt = select(Memo.id, Memo.created_at, Memo.updated_at).where(Memo.id.in_(ids))
    return {row.id: (row.created_at, row.updated_at) for row in session.execute(mark(stmt) if mark else stmt)}


@recipe.helper
def before_and_after(run, p, write, *, new_rows=False):
    """Read the rows' timestamps, run `write(session, ids)` and commit, then read them again.

    The read before the write is "the query" unless the write marks itself (a single UPDATE);
    for new rows there is no before, and the read after is the one explained.
    """
    ids = list(range(1, p.rows + 1))
    with run.session() as session:
        before = {} if new_rows else stamps(session, ids, run.main)
        ids = write(session, ids) or ids
        session.commit()
        after = stamps(session, ids, run.main if new_rows else None)
    old = {i: before[i][1] if i in before else None for i in ids}
    bumped = [i for i in ids if old[i] != after[i][1]]
    run.metric("rows_touched", len(ids))
    run.metric("updated_at_bumped", len(bumped))
    run.metric("distinct_new_updated_at", len({after[i][1] for i in bumped}))
    data = [(i, after[i][0], old[i], after[i][1], i in bumped) for i in ids]
    return Rows(("id", "created_at", "updated_at before", "updated_at after", "changed"), data)


@recipe.variant(slug="insert")
def insert_(run, p):
    """INSERT through the ORM: Postgres fills both columns from server_default"""

    def write(session, ids):
        memos = [Memo(title=f"New memo {n}") for n in range(p.rows)]
        session.add_all(memos)
        session.flush()
        return [m.id for m in memos]

    return before_and_after(run, p, write, new_rows=True)


@recipe.variant
def orm_update(run, p):
    """Change an attribute on loaded objects and flush: the ORM writes the UPDATE"""

    def write(session, ids):
        for memo in session.scalars(select(Memo).where(Memo.id.in_(ids))):
            memo.title = memo.title + " (edited)"
        session.flush()

    return before_and_after(run, p, write)


@recipe.variant
def bulk_update(run, p):
    """session.execute(update(Memo).where(…).values(…)): one UPDATE for all rows"""

    def write(session, ids):
        stmt = update(Memo).where(Memo.id.in_(ids)).values(title=Memo.title + " (bulk)")
        session.execute(run.main(stmt))

    return before_and_after(run, p, write)


@recipe.variant
def bulk_update_by_pk(run, p):
    """session.execute(update(Memo), [{"id": …, "title": …}, …]): bulk UPDATE by primary key"""

    def write(session, ids):
        session.execute(update(Memo), [{"id": i, "title": f"Memo {i} (by key)"} for i in ids])

    return before_and_after(run, p, write)


@recipe.variant
def raw_update(run, p):
    """Plain SQL UPDATE, as another service or a psql session would send it"""

    def write(session, ids):
        stmt = text("UPDATE memos SET title = title || ' (raw)' WHERE id = ANY(:ids)")
        session.execute(run.main(stmt), {"ids": ids})

    return before_and_after(run, p, write)


@recipe.variant
def trigger(run, p):
    """A BEFORE UPDATE trigger sets updated_at, then the same plain SQL UPDATE"""

    def write(session, ids):
        session.execute(
            text(
                "CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$"
            )
        )
        session.execute(
            text(
                "CREATE TRIGGER memos_touch BEFORE UPDATE ON memos "
                "FOR EACH ROW EXECUTE FUNCTION touch_updated_at()"
            )
        )
        stmt = text("UPDATE memos SET title = title || ' (raw)' WHERE id = ANY(:ids)")
        session.execute(run.main(stmt), {"ids": ids})

    return before_and_after(run, p, write)


@recipe.notes
def notes(result):
    touched = result.metrics.get("rows_touched")
    if touched is None:
        return []
    bumped = result.metrics["updated_at_bumped"]
    writes = [
        s
        for s in result.statements
        if s.kind == "query" and s.sql.lstrip().upper().startswith(("UPDATE", "INSERT"))
    ]
    lines = []
    if result.variant == "insert":
        lines.append(f"{touched} new row(s): created_at and updated_at came from the server default.")
    elif bumped == touched:
        lines.append(f"updated_at moved on all {touched} row(s): this write path maintains it.")
    else:
        lines.append(f"updated_at moved on {bumped} of {touched} row(s): this write path leaves it stale.")
    sets = [s for s in writes if s.sql.lstrip().upper().startswith("UPDATE")]
    if sets:
        named = any("updated_at" in s.sql.split("WHERE")[0] for s in sets)
        lines.append(
            "The UPDATE that was sent sets updated_at itself (SQLAlchemy added it)."
            if named
            else "The UPDATE that was sent does not mention updated_at; only the database could change it."
        )
    distinct = result.metrics["distinct_new_updated_at"]
    if bumped > 1:
        lines.append(
            f"{bumped} rows got {distinct} distinct new timestamp(s): now() is the transaction's start time, "
            "the same for every row written in it."
        )
    return lines


# --- questions and challenges ---
recipe.learn(
    Question(
        "stamped",
        "{variant} writes {rows} memo(s). On how many will updated_at move?",
        answer="metric:updated_at_bumped",
        why=lambda r: (
            f"{r.metrics['updated_at_bumped']} of {r.metrics['rows_touched']} row(s) got a new "
            "updated_at: onupdate= is added by SQLAlchemy to the UPDATEs it writes, and only a trigger "
            "covers the others."
        ),
    ),
    Challenge(
        "no-stale-rows",
        "Change {rows} memo(s) and leave none with a stale updated_at",
        checks=(Check("metric:updated_at_bumped", at_least="rows"), Check("errors", at_most=0)),
    ),
)
