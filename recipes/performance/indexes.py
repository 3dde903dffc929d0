"""Indexes that actually get used.

Reach for it when a query is slow and "add an index" is the first idea: the right index has the
right columns in the right order, and EXPLAIN confirms Postgres chose it. Columns compared with =
go first and the column you sort or range over goes last, so (owner_id, created_at) hands over one
owner's newest rows in order. A partial index covers only the rows a query asks for. A function
around the column, as in lower(email), hides it from a plain index; only an index on that same
expression helps. And every index is paid for on every write, used or not. PostgreSQL 18 bends the
column-order rule: with few distinct owners, a skip scan answers a query on created_at alone from
(owner_id, created_at), one index search per owner, where 16 reads the whole table (the
one-instant query with few owners; Compare versions shows both plans).

Pick the query shape, then run each index choice: the variant builds its index (dropping the
others), runs ANALYZE so the planner knows the new statistics, runs the query, and times a batch
of inserts with and without the index, five times each, in transactions that are rolled back.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from recipes import params
from recipes.base import Param, Recipe, Rows
from recipes.datasets import DOCUMENTS, USERS, Document, User
from recipes.learning import Challenge, Check, Question
from recipes.measures import SCAN_CHOICES
from recipes.notes import plan_of, plural

CHOICES = {
    "none": (DOCUMENTS, None),
    "owner-created": (DOCUMENTS, "ix_documents_owner_created"),
    "created-owner": (DOCUMENTS, "ix_documents_created_owner"),
    "partial-live": (DOCUMENTS, "ix_documents_live_created"),
    "email": (USERS, "users_email_key"),  # the unique constraint's index: always there
    "lower-email": (USERS, "ix_users_email_lower"),
}
WITHOUT = {"users_email_key": "ALTER TABLE users DROP CONSTRAINT users_email_key"}
"""How to take away an index that belongs to a constraint (others: DROP INDEX)."""
REPEATS = 5
"""Timed inserts with the index, and as many without it."""
BATCH = {
    "documents": """INSERT INTO documents (owner_id, title, created_at, updated_at)
                    SELECT 1 + i % 1000, 'Extra ' || i, now(), now() FROM generate_series(1, :n) AS i""",
    "users": """INSERT INTO users (email, name, role, active)
                SELECT 'extra' || i || '@example.com', 'Extra ' || i, 'member', true
                FROM generate_series(1, :n) AS i""",
}

recipe = Recipe(
    slug="indexes",
    title="Indexes that get used",
    section="Performance",
    summary=__doc__,
    variant_alias="index",
    params=(
        Param(
            "query",
            "choice",
            "owner-newest",
            label="Query",
            choices=("owner-newest", "live-newest", "email-lower", "one-instant"),
            help="owner-newest: one owner's 20 newest documents; live-newest: the 20 newest not deleted; "
            "email-lower: a user by lower(email); one-instant: the documents written at one instant "
            "(created_at alone, the middle of the table).",
        ),
        params.rows(
            200_000,
            min=1_000,
            max=1_000_000,
            sweepable=False,
            help="Rows in documents and in users; changing it re-seeds them.",
        ),
        Param("owners", "int", 1000, label="Owners", min=1, max=100_000, help="Distinct owner_id values."),
        Param("owner", "int", 1, label="owner_id to look up", min=1, max=100_000),
        params.email("User42@Example.com", label="Email to look up", max_length=100),
        Param(
            "batch",
            "int",
            1000,
            label="Write batch",
            min=100,
            max=20_000,
            help="Rows inserted to time writes.",
        ),
    ),
    docs=(
        (
            "PostgreSQL: multicolumn indexes",
            "https://www.postgresql.org/docs/current/indexes-multicolumn.html",
        ),
        ("PostgreSQL: partial indexes", "https://www.postgresql.org/docs/current/indexes-partial.html"),
        (
            "PostgreSQL: indexes on expressions",
            "https://www.postgresql.org/docs/current/indexes-expressional.html",
        ),
        ("SQLAlchemy: Index", "https://docs.sqlalchemy.org/en/20/core/constraints.html#indexes"),
    ),
)


@recipe.setup
def prepare(setup, p):
    setup.dataset(DOCUMENTS, rows=p.rows, owners=p.owners)
    setup.dataset(USERS, rows=p.rows, match=10)


@recipe.helper
def the_query(p):
    """The query shape chosen with the `query` parameter."""
    if p.query == "email-lower":
        return select(User.id, User.email).where(func.lower(User.email) == p.email.lower())
    columns = (Document.id, Document.owner_id, Document.created_at)
    if p.query == "one-instant":
        return select(*columns).where(Document.created_at == middle_instant(p))
    if p.query == "owner-newest":
        return (
            select(*columns)
            .where(Document.owner_id == p.owner)
            .order_by(Document.created_at.desc())
            .limit(20)
        )
    return (
        select(*columns).where(Document.deleted_at.is_(None)).order_by(Document.created_at.desc()).limit(20)
    )


@recipe.helper
def middle_instant(p):
    """The created_at of the document in the middle of the table, as the dataset writes it: three
    documents share each instant, 37 seconds apart, from 2024-01-01."""
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=37 * ((p.rows // 2 - 1) // 3))


@recipe.helper
def use_index(conn, dataset, name):
    """Make `name` the only optional index of the two tables; ANALYZE after building it."""
    present = set(conn.scalars(text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")))
    for other in (set(DOCUMENTS.indexes) | set(USERS.indexes)) & present - {name}:
        conn.execute(text(f"DROP INDEX {other}"))
    if name in dataset.indexes and name not in present:
        started = time.perf_counter()
        conn.execute(text(dataset.indexes[name]))
        conn.execute(text(f"ANALYZE {dataset.table}"))
        return round((time.perf_counter() - started) * 1000, 1)
    return None


@recipe.helper
def insert_ms(conn, table, batch, without=None):
    """One timed insert of `batch` rows, rolled back; with the index dropped first when `without`."""
    transaction = conn.begin()
    if without:
        conn.execute(text(WITHOUT.get(without, f"DROP INDEX {without}")))
    started = time.perf_counter()
    conn.execute(text(BATCH[table]), {"n": batch})
    elapsed = (time.perf_counter() - started) * 1000
    transaction.rollback()
    return round(elapsed, 2)


@recipe.helper
def write_cost(run, conn, table, batch, index):
    """Time REPEATS inserts with the index and, taking turns, REPEATS without it (when there is one).

    Every timing is kept: their median is the figure, their range shows how much a timing moves
    from one try to the next, so a difference smaller than that is not read as the index's cost.
    """
    with_index, without_index = [], []
    for _ in range(REPEATS):
        with_index.append(insert_ms(conn, table, batch))
        if index:
            without_index.append(insert_ms(conn, table, batch, without=index))
    run.metric("insert_ms_with_index", statistics.median(with_index))
    run.metric("insert_ms_with_index_runs", with_index)
    if index:
        run.metric("insert_ms_without_index", statistics.median(without_index))
        run.metric("insert_ms_without_index_runs", without_index)


@recipe.helper
@contextmanager
def only_index(run, p, choice):
    """A connection on which the chosen index is the only optional one (built and ANALYZEd if it
    is new); once the block has run its query, weigh the index and time writes with and without it."""
    dataset, name = CHOICES[choice]
    if name is None and p.query == "email-lower":
        dataset = USERS
    with run.connect() as conn:
        built = use_index(conn, dataset, name)
        conn.commit()
        yield conn
        conn.commit()
        if name:
            run.metric(
                "index_kb", conn.execute(text("SELECT pg_relation_size(:i)"), {"i": name}).scalar() // 1024
            )
        run.metric(
            "table_kb",
            conn.execute(text("SELECT pg_relation_size(:t)"), {"t": dataset.table}).scalar() // 1024,
        )
        if built is not None:
            run.metric("build_and_analyze_ms", built)
        conn.commit()
        write_cost(run, conn, dataset.table, p.batch, name)
        # The rolled-back rows stay behind as dead tuples; clear them so the table does not grow.
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(f"VACUUM {dataset.table}"))


@recipe.helper
def found(p, rows):
    """The rows the query returned, under its own column names."""
    return Rows(tuple(the_query(p).selected_columns.keys()), [tuple(row) for row in rows])


@recipe.variant
def none(run, p):
    """No index beyond the primary key (and users' unique email)"""
    with only_index(run, p, "none") as conn:
        rows = conn.execute(run.main(the_query(p))).all()
    return found(p, rows)


@recipe.variant
def owner_created(run, p):
    """(owner_id, created_at DESC): the equality column first, the sort column last"""
    with only_index(run, p, "owner-created") as conn:
        rows = conn.execute(run.main(the_query(p))).all()
    return found(p, rows)


@recipe.variant
def created_owner(run, p):
    """(created_at DESC, owner_id): the same columns in the other order"""
    with only_index(run, p, "created-owner") as conn:
        rows = conn.execute(run.main(the_query(p))).all()
    return found(p, rows)


@recipe.variant
def partial_live(run, p):
    """(created_at DESC) WHERE deleted_at IS NULL: only the live rows"""
    with only_index(run, p, "partial-live") as conn:
        rows = conn.execute(run.main(the_query(p))).all()
    return found(p, rows)


@recipe.variant
def email(run, p):
    """The plain B-tree on users.email (the unique constraint's)"""
    with only_index(run, p, "email") as conn:
        rows = conn.execute(run.main(the_query(p))).all()
    return found(p, rows)


@recipe.variant
def lower_email(run, p):
    """An index on the expression lower(email)"""
    with only_index(run, p, "lower-email") as conn:
        rows = conn.execute(run.main(the_query(p))).all()
    return found(p, rows)


@recipe.notes
def notes(result):
    lines = []
    summary = plan_of(result)
    if summary is not None and summary.key_scan is not None:
        lines.append(scan_line(summary, result.rows.total if result.rows else 0))
        if [n for n in summary.nodes if "Sort" in n.node_type]:
            lines.append("The plan sorts: no index handed the rows over in ORDER BY's order.")
    m = result.metrics
    if "index_kb" in m and "insert_ms_without_index_runs" in m:
        lines.append(
            f"The index takes {m['index_kb']:,} KB. "
            + write_line(
                result.params["batch"], m["insert_ms_with_index_runs"], m["insert_ms_without_index_runs"]
            )
        )
    return lines


def scan_line(summary, returned: int) -> str:
    """The scan that did the work: rows for a table scan; pages and index searches once an index is
    used, since its rows read count only the entries that met the index condition, not those the
    scan stepped over on its way."""
    scan = summary.key_scan
    buffers = f"{scan.shared_hit + scan.shared_read:,} buffers (8 kB pages) touched"
    bitmaps = [n for n in summary.nodes if n.node_type == "Bitmap Index Scan"]
    index = scan if scan.index else bitmaps[0] if scan.node_type == "Bitmap Heap Scan" and bitmaps else None
    if index is None:
        used = [n.index for n in summary.nodes if n.index]
        return (
            f"{scan.label}: {scan.rows_read:,} rows read for {returned:,} returned, {buffers}, "
            f"{summary.execution_ms:.2f} ms. "
            + (f"The index used: {used[0]}." if used else "No index was used.")
        )
    searches = [n.index_searches for n in summary.nodes if n.index_searches is not None]
    searched = f" in {plural(sum(searches), 'index search', 'index searches')}" if searches else ""
    label = scan.label if scan is index else f"{scan.label} (after {index.label})"
    return f"{label}: {plural(returned, 'row')} returned, {buffers}{searched}, {summary.execution_ms:.2f} ms."


def write_line(batch: int, with_index: list[float], without_index: list[float]) -> str:
    """Median insert times with and without the index. Where the middle halves of the two sets of
    tries overlap, the difference is inside run-to-run noise and is said to be, not printed as a cost."""
    (low, high), (low_without, high_without) = middle_half(with_index), middle_half(without_index)
    with_, without = statistics.median(with_index), statistics.median(without_index)
    said = (
        f"Inserting {batch:,} rows took {with_:.1f} ms with it and {without:.1f} ms without (medians of "
        f"{len(with_index)} tries each; the middle half of the tries took {low:.1f}–{high:.1f} ms with it "
        f"and {low_without:.1f}–{high_without:.1f} ms without)"
    )
    if low <= high_without and low_without <= high:
        return said + ": those overlap, so the difference is within run-to-run noise."
    return said + f": {(with_ - without) / without * 100:+.0f}% with the index."


def middle_half(timings: list[float]) -> tuple[float, float]:
    """The first and third quartiles: where the middle half of the timings lie."""
    quartiles = statistics.quantiles(timings, n=4, method="inclusive")
    return quartiles[0], quartiles[2]


# --- questions and challenges ---
recipe.learn(
    Question(
        "scan",
        "For the {query} query, which scan will read the most rows?",
        answer="key_scan",
        choices=SCAN_CHOICES,
    ),
    Question(
        "rows-read",
        "How many rows will the {query} query read with {variant}?",
        answer="rows_read",
        close=0.1,
    ),
    Challenge(
        "lower-email",
        "Make the lower(email) lookup use an index",
        checks=(Check("nodes", excludes="Seq Scan"), Check("index_used", equals="yes")),
        params={"query": "email-lower"},
    ),
)
