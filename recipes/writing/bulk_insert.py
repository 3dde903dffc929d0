"""Bulk insert: how many statements thousands of rows become.

Reach for it when importing a file, seeding fixtures, writing a batch of log or embedding rows.
What costs is not Postgres writing the rows but everything around each one: building an ORM
object, a statement, a round trip. The paths below go from the ORM's unit of work to psycopg's
COPY. Each run counts three things that are easily taken for one another: the calls the client
made to the driver, the parameter sets those calls carried, and the statements Postgres executed
(counted afterwards from the rows themselves); and it shows which paths call a column's
Python-side `default=` (Postgres never sees that function).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import psycopg
from sqlalchemy import func, insert, literal_column, select, text
from sqlalchemy.orm import Session

from recipes import params
from recipes.base import Cost, Param, Recipe, Rows
from recipes.datasets import BULK_ITEMS, BulkItem
from recipes.learning import Challenge, Check, Question
from recipes.notes import plural

recipe = Recipe(
    slug="bulk-insert",
    title="Bulk insert: how many statements thousands of rows become",
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
    """Time the block and count what the client sent: driver calls, parameter sets, executions."""
    first = len(run.statements)
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    sent = [s for s in run.statements[first:] if s.kind in ("query", "copy")]
    commits = [s for s in run.statements[first:] if s.sql == "COMMIT"]
    run.metric("insert_ms", round(seconds * 1000, 1))
    run.metric("rows_per_s", round(p.rows / seconds))
    run.metric("driver_calls", len(sent))
    run.metric("parameter_sets", sum(s.batches for s in sent if s.kind == "query"))
    run.metric("executions_sent", sum(s.executions for s in sent))
    # One wait for the server per driver call and per COMMIT. An executemany is one call: in
    # pipeline mode psycopg sends every execution without waiting for the one before.
    run.metric("round_trips", len(sent) + len(commits))
    if any(s.executions > 1 for s in sent):
        run.metric("pipelined", psycopg.Pipeline.is_supported())


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
    """Rows now in bulk_items, how many got the Python-side default, and the statements that wrote them.

    Every row carries the transaction (xmin) and the command within it (cmin) that wrote it, so
    rows sharing both came from one statement, whatever the client believed it sent.
    """
    per_statement = (
        select(func.count().label("rows"))
        .select_from(BulkItem)
        .group_by(literal_column("xmin::text"), literal_column("cmin::text"))
        .subquery()
    )
    with run.connect() as conn:
        total, defaulted = conn.execute(run.main(select(func.count(), func.count(BulkItem.source)))).one()
        executed, fewest, most = conn.execute(
            select(func.count(), func.min(per_statement.c.rows), func.max(per_statement.c.rows))
        ).one()
    run.metric("rows_in_table", total)
    run.metric("python_default_applied", defaulted)
    run.metric("statements_executed", executed)
    run.metric("rows_per_statement_min", fewest)
    run.metric("rows_per_statement_max", most)
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
    if "statements_executed" not in m:
        return []
    writes = [s for s in result.statements if s.kind in ("query", "copy") and s.sql.lstrip()[:4] in WRITES]
    sets = m["parameter_sets"]
    lines = [
        f"{m['rows_in_table']:,} rows in {m['insert_ms']:,.0f} ms ({m['rows_per_s']:,} rows/s): "
        f"{plural(m['driver_calls'], 'driver call')} "
        + (f"carrying {plural(sets, 'parameter set')}" if sets else "with no parameters")
        + f"; {server_side(m)} (counted from the rows' xmin and cmin).",
        how_rows_travelled(result, writes),
        f"{plural(m['round_trips'], 'round trip')} counting the COMMIT"
        + (
            ": the executemany counts once, as psycopg pipelines its executions instead of waiting "
            "for each one's result."
            if m.get("pipelined")
            else "."
        ),
    ]
    defaulted, total = m["python_default_applied"], m["rows_in_table"]
    if defaulted == total:
        lines.append(f"The Python-side default= ran for every row ({defaulted:,} of {total:,}).")
    else:
        lines.append(f"The Python-side default= ran for {defaulted:,} of {total:,} rows; the rest have NULL.")
    return lines


WRITES = ("INSE", "COPY")


def server_side(m: dict) -> str:
    """What Postgres executed, from the statements that wrote the rows."""
    executed = m["statements_executed"]
    fewest, most = m["rows_per_statement_min"], m["rows_per_statement_max"]
    if executed == 1:
        return f"Postgres executed 1 statement that wrote all {plural(most, 'row')}"
    each = f"{plural(most, 'row')} each" if fewest == most else f"{fewest:,} to {most:,} rows each"
    return f"Postgres executed {executed:,} statements that wrote rows, {each}"


def how_rows_travelled(result, writes: list) -> str:
    """What the client-side calls became on the server, read from the captured statements."""
    executed = result.metrics["statements_executed"]
    many = [s for s in writes if s.executions > 1]
    folded = [s for s in writes if s.batches > 1 and s.executions == 1]
    if many:
        sets = sum(s.batches for s in many)
        return (
            f"{plural(len(many), 'executemany call')} handed psycopg {plural(sets, 'parameter set')}, and "
            + (
                "each became an INSERT of its own on the server."
                if executed == sets
                else f"the server executed {plural(executed, 'statement')}."
            )
        )
    if folded:
        return (
            f"SQLAlchemy folded {plural(sum(s.batches for s in folded), 'parameter set')} into "
            f"{plural(len(folded), 'multi-row INSERT')} of at most {max(s.batches for s in folded):,} rows "
            "(insertmanyvalues): one execution each."
        )
    if writes and all(s.kind == "copy" for s in writes):
        return (
            f"COPY streamed the rows as data in {plural(len(writes), 'command')}, with no parameters at all."
        )
    return (
        f"{plural(len(writes), 'INSERT … VALUES statement')}, each sent with one parameter set that "
        f"holds the values of up to {plural(max((s.rowcount or 0 for s in writes), default=0), 'row')}."
    )


# --- questions and challenges ---
recipe.learn(
    Question(
        "batches",
        "add_all() with a batch size of {batch_size:,}: how many INSERT statements will carry "
        "the {rows:,} rows?",
        answer="metric:statements_executed",
        variant="add-all",
        why=lambda r: (
            f"The unit of work sends the rows in INSERT … VALUES statements of at most "
            f"{r.params['batch_size']:,} rows each: {r.metrics['statements_executed']} of them, the largest "
            f"{r.metrics['rows_per_statement_max']:,} rows."
        ),
    ),
    Challenge(
        "five-times-faster",
        "Insert {rows:,} rows at least 5× faster than the add() loop",
        checks=(
            Check("metric:insert_ms", faster_than="add-loop", times=5),
            Check("metric:rows_in_table", at_least="rows"),
        ),
        params={"rows": 10_000},
    ),
)
