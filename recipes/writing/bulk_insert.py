"""Bulk insert: thousands of rows in a handful of statements.

Reach for it when importing a file, seeding fixtures, writing a batch of log or embedding rows.
What costs is not Postgres writing the rows but everything around each one: building an ORM
object, a statement, a round trip. The paths below go from the ORM's unit of work to psycopg's
COPY; the figures show how many statements each really sends, how many rows each carries, and
which paths call a column's Python-side `default=` (Postgres never sees that function).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from recipes import params
from recipes.base import Cost, Param, Recipe, Rows
from recipes.datasets import BULK_ITEMS, BulkItem

recipe = Recipe(
    slug="bulk-insert",
    title="Bulk insert: thousands of rows in one statement",
    section="Writing",
    summary=__doc__,
    params=(
        params.rows(
            10_000,
            min=100,
            max=200_000,
            label="Rows",
            help="Rows to insert; bulk_items is emptied before every run.",
        ),
        Param(
            "batch_size",
            "int",
            1_000,
            label="Batch size",
            min=10,
            max=10_000,
            sweepable=True,
            help="Rows per INSERT where SQLAlchemy batches (insertmanyvalues) and for the VALUES path.",
        ),
    ),
    docs=(
        ("PostgreSQL: populating a database", "https://www.postgresql.org/docs/current/populate.html"),
        (
            "SQLAlchemy: ORM bulk INSERT statements",
            "https://docs.sqlalchemy.org/en/20/orm/queryguide/dml.html#orm-bulk-insert-statements",
        ),
        (
            'SQLAlchemy: "insertmanyvalues" behavior',
            "https://docs.sqlalchemy.org/en/20/core/connections.html#engine-insertmanyvalues",
        ),
        ("psycopg: COPY", "https://www.psycopg.org/psycopg3/docs/basic/copy.html"),
    ),
)


BATCHED = ("add-loop", "add-all", "values", "returning")
"""The paths that send one INSERT per `batch_size` rows."""
MAX_STATEMENTS = 2_000
MAX_ROWS = {
    "add-loop": (50_000, "the session holds every object it adds until the commit, ~3 kB of Python each"),
    "add-all": (50_000, "the session holds every object it adds until the commit, ~3 kB of Python each"),
    "values": (50_000, "SQLAlchemy compiles a new statement for every batch, ~0.1 ms of Python a row"),
    "executemany": (100_000, "every row's parameters are held in Python at once, ~1.5 kB each"),
    "returning": (100_000, "every row's parameters and returned id are held in Python at once"),
}
"""Rows one run of a path may insert, and why: measured on a shared worker, each bound keeps a run
under about 160 MB of Python memory and 5 s. COPY streams its rows: it may take the whole range."""


@recipe.cost
def cost(variant, p):
    statements = -(-p.rows // p.batch_size) if variant in BATCHED else 1
    return Cost(statements=statements, rows=p.rows)


@recipe.guard
def limits(variant, p):
    """Refuse runs that would hold a shared worker's memory or time for long."""
    most, why = MAX_ROWS.get(variant, (p.rows, ""))
    if p.rows > most:
        return {"rows": f"{variant} may insert at most {most:,} rows in one run: {why}. copy takes more."}
    statements = cost(variant, p).statements
    if statements > MAX_STATEMENTS:
        return {
            "batch_size": f"{p.rows:,} rows in batches of {p.batch_size:,} is {statements:,} INSERTs; "
            f"one run may send at most {MAX_STATEMENTS:,}. Use batches of {-(-p.rows // MAX_STATEMENTS):,} "
            "or more."
        }
    return {}


@recipe.setup
def prepare(setup, p):
    setup.dataset(BULK_ITEMS)
    with setup.step("emptied bulk_items"):
        setup.conn.execute(text("TRUNCATE bulk_items RESTART IDENTITY"))


@recipe.helper
def make_rows(p):
    """The rows to import, as plain dicts; built before the clock starts."""
    return [{"name": f"item {i}", "value": i % 1000} for i in range(p.rows)]


@recipe.helper
def session_in_batches(run, p):
    """A session whose batched INSERTs carry p.batch_size rows each (insertmanyvalues page size).

    It takes its connection at the first statement, so no transaction sits idle while Python
    builds objects (the sandbox ends transactions left idle too long).
    """
    return Session(run.engine.execution_options(insertmanyvalues_page_size=p.batch_size))


@recipe.helper
@contextmanager
def clocked(run, p):
    """Time the block and count what it sent: statements, rows per statement, round trips."""
    first = len(run.statements)
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    sent = [s for s in run.statements[first:] if s.kind in ("query", "copy")]
    commits = [s for s in run.statements[first:] if s.sql == "COMMIT"]
    run.metric("insert_ms", round(seconds * 1000, 1))
    run.metric("rows_per_s", round(p.rows / seconds))
    run.metric("statements", len(sent))
    run.metric("batches", sum(1 for s in sent if s.sql.lstrip()[:6].upper() in ("INSERT", "COPY B")))
    run.metric("largest_batch_rows", max((s.rowcount or 0 for s in sent), default=0))
    run.metric("round_trips", len(sent) + len(commits))


@recipe.helper
def copy_rows(run, conn, sql, rows):
    """Stream rows through psycopg's COPY. SQLAlchemy never sees it, so it is recorded here."""
    cursor = conn.connection.driver_connection.cursor()
    started = time.perf_counter()
    with cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
    run.record(sql, None, duration_ms=(time.perf_counter() - started) * 1000, rowcount=cursor.rowcount)


@recipe.helper
def table_state(run):
    """Rows now in bulk_items, and how many of them got the Python-side default."""
    with run.connect() as conn:
        total, defaulted = conn.execute(run.main(select(func.count(), func.count(BulkItem.source)))).one()
    run.metric("rows_in_table", total)
    run.metric("python_default_applied", defaulted)
    return Rows(
        ("rows in bulk_items", "source set by default=", "source left NULL"),
        [(total, defaulted, total - defaulted)],
    )


@recipe.variant
def add_loop(run, p):
    """add-loop: session.add() once per row, one commit at the end"""
    data = make_rows(p)
    with session_in_batches(run, p) as session, clocked(run, p):
        for row in data:
            session.add(BulkItem(**row))
        session.commit()
    return table_state(run)


@recipe.variant
def add_all(run, p):
    """add-all: build the objects, session.add_all() them, commit"""
    data = make_rows(p)
    with session_in_batches(run, p) as session, clocked(run, p):
        session.add_all([BulkItem(**row) for row in data])
        session.commit()
    return table_state(run)


@recipe.variant
def executemany(run, p):
    """executemany: session.execute(insert(BulkItem), rows) with a list of dicts"""
    data = make_rows(p)
    with session_in_batches(run, p) as session, clocked(run, p):
        session.execute(insert(BulkItem), data)
        session.commit()
    return table_state(run)


@recipe.variant
def values(run, p):
    """values: one multi-row INSERT … VALUES (…), (…), … per batch_size rows"""
    data = make_rows(p)
    with session_in_batches(run, p) as session, clocked(run, p):
        for start in range(0, len(data), p.batch_size):
            session.execute(insert(BulkItem).values(data[start : start + p.batch_size]))
        session.commit()
    return table_state(run)


@recipe.variant
def returning(run, p):
    """returning: the executemany form plus .returning(BulkItem.id): the new ids come back"""
    data = make_rows(p)
    with session_in_batches(run, p) as session, clocked(run, p):
        ids = session.scalars(insert(BulkItem).returning(BulkItem.id), data).all()
        session.commit()
    run.metric("ids_returned", len(ids))
    return table_state(run)


@recipe.variant
def copy(run, p):
    """copy: COPY bulk_items FROM STDIN through psycopg, every row streamed in one command"""
    data = make_rows(p)
    with clocked(run, p), run.engine.begin() as conn:
        copy_rows(
            run, conn, "COPY bulk_items (name, value) FROM STDIN", ((r["name"], r["value"]) for r in data)
        )
    return table_state(run)


@recipe.notes
def notes(result):
    m = result.metrics
    if "rows_per_s" not in m:
        return []
    lines = [
        f"{m['rows_in_table']:,} rows in {m['insert_ms']:,.0f} ms: {m['rows_per_s']:,} rows/s, "
        f"{m['statements']} statement(s) ({m['batches']} carrying rows, "
        f"the largest {m['largest_batch_rows']:,}), "
        f"{m['round_trips']} round trip(s) counting the COMMIT."
    ]
    inserts = [
        s for s in result.statements if s.kind == "query" and s.sql.lstrip().upper().startswith("INSERT")
    ]
    if len(inserts) == 1 and inserts[0].batches > 1:
        lines.append(
            f"SQLAlchemy did not batch this one: a single executemany call handed psycopg all "
            f"{inserts[0].batches:,} parameter sets (psycopg pipelines them)."
        )
    defaulted, total = m["python_default_applied"], m["rows_in_table"]
    if defaulted == total:
        lines.append(f"The Python-side default= ran for every row ({defaulted:,} of {total:,}).")
    else:
        lines.append(f"The Python-side default= ran for {defaulted:,} of {total:,} rows; the rest have NULL.")
    return lines
