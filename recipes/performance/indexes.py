"""Indexes that actually get used.

Reach for it when a query is slow and "add an index" is the first idea: the right index has the
right columns in the right order, and EXPLAIN confirms Postgres chose it. Columns compared with =
go first and the column you sort or range over goes last, so (owner_id, created_at) hands over one
owner's newest rows in order. A partial index covers only the rows a query asks for. A function
around the column, as in lower(email), hides it from a plain index; only an index on that same
expression helps. And every index is paid for on every write, used or not.

Pick the query shape, then run each index choice: the variant builds its index (dropping the
others), runs ANALYZE so the planner knows the new statistics, runs the query, and times a batch
of inserts with and without the index, in transactions that are rolled back.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from sqlalchemy import func, select, text

from recipes import params
from recipes.base import Param, Recipe, Rows
from recipes.datasets import DOCUMENTS, USERS, Document, User
from recipes.learning import Challenge, Check, Question
from recipes.measures import SCAN_CHOICES
from recipes.notes import plan_of

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
            choices=("owner-newest", "live-newest", "email-lower"),
            help="owner-newest: one owner's 20 newest documents; live-newest: the 20 newest not deleted; "
            "email-lower: a user by lower(email).",
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
    """Best of three timed inserts of `batch` rows, each rolled back; optionally without an index."""
    timings = []
    for _ in range(3):
        transaction = conn.begin()
        if without:
            conn.execute(text(WITHOUT.get(without, f"DROP INDEX {without}")))
        started = time.perf_counter()
        conn.execute(text(BATCH[table]), {"n": batch})
        timings.append((time.perf_counter() - started) * 1000)
        transaction.rollback()
    return round(min(timings), 2)


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
        run.metric("insert_ms_with_index", insert_ms(conn, dataset.table, p.batch))
        if name:
            run.metric("insert_ms_without_index", insert_ms(conn, dataset.table, p.batch, without=name))
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
        scan = summary.key_scan
        used = [n for n in summary.nodes if n.index]
        returned = result.rows.total if result.rows else 0
        lines.append(
            f"{scan.label}: {scan.rows_read:,} rows read for {returned:,} returned, "
            f"{scan.shared_hit + scan.shared_read:,} buffers touched, {summary.execution_ms:.2f} ms."
            + (f" The index used: {used[0].index}." if used else " No index was used.")
        )
        if [n for n in summary.nodes if "Sort" in n.node_type]:
            lines.append("The plan sorts: no index handed the rows over in ORDER BY's order.")
    m = result.metrics
    if "index_kb" in m and "insert_ms_without_index" in m:
        without, with_ = m["insert_ms_without_index"], m["insert_ms_with_index"]
        lines.append(
            f"The index takes {m['index_kb']:,} KB. Inserting {result.params['batch']:,} rows took "
            f"{with_:.1f} ms with it and {without:.1f} ms without"
            + (f" ({(with_ - without) / without * 100:+.0f}%)." if without else ".")
        )
    return lines


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
