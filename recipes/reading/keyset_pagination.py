"""Keyset (seek) pagination: continue after the last row seen.

Reach for it for "load more" and infinite scroll, or whenever people page deep into a big table.
The cursor is the last row's (created_at, id); with an index in exactly the ORDER BY's order,
Postgres seeks straight to it and reads one page of rows whatever the depth. It cannot jump to
page 47, and an ORDER BY that does not match the index brings a sort back.
"""

from __future__ import annotations

from sqlalchemy import select, text, tuple_

from recipes import params
from recipes.base import Param, Recipe, Rows
from recipes.datasets import DOCUMENTS, Document
from recipes.learning import Challenge, Check, Question
from recipes.notes import rows_read_line
from recipes.reading.offset_pagination import TABLE_ROWS

INDEXES = {
    "composite": {"ix_documents_created_id"},
    "created_at": {"ix_documents_created_at"},
    "none": set(),
}

recipe = Recipe(
    slug="keyset-pagination",
    title="Keyset pagination",
    section="Reading",
    summary=__doc__,
    companions=("offset-pagination",),
    params=(
        params.page(
            label="Page depth", help="Which page to fetch: the cursor is the last row of the page before it."
        ),
        params.PAGE_SIZE,
        TABLE_ROWS,
        Param(
            "index",
            "choice",
            "composite",
            label="Index",
            choices=tuple(INDEXES),
            help="composite = (created_at DESC, id DESC); created_at = one column; none.",
        ),
    ),
    docs=(
        (
            "PostgreSQL: row constructor comparison",
            "https://www.postgresql.org/docs/current/functions-comparisons.html#ROW-WISE-COMPARISON",
        ),
        ("PostgreSQL: indexes and ORDER BY", "https://www.postgresql.org/docs/current/indexes-ordering.html"),
        (
            "SQLAlchemy: tuple_()",
            "https://docs.sqlalchemy.org/en/20/core/sqlelement.html#sqlalchemy.sql.expression.tuple_",
        ),
    ),
)

COLUMNS = ("id", "title", "created_at")


@recipe.setup
def prepare(setup, p):
    setup.dataset(DOCUMENTS, rows=p.rows, owners=1000)
    setup.indexes(DOCUMENTS, INDEXES[p.index])
    setup.prepared["cursor"] = cursor_before_page(setup.conn, p.page, p.size)


def cursor_before_page(conn, page, size):
    """(created_at, id) of the last row of the previous page, or None on page 1.

    An application gets it from the page it just showed; here it is read from the seeded data
    (newest first means the k-th row has id = max(id) - k + 1), outside the measured run.
    Past the end of the table it is the oldest row, so the page comes back empty as OFFSET's does.
    """
    if page == 1:
        return None
    row = conn.execute(
        text(
            "SELECT created_at, id FROM documents "
            "WHERE id = GREATEST((SELECT max(id) FROM documents) - :k + 1, (SELECT min(id) FROM documents))"
        ),
        {"k": (page - 1) * size},
    ).first()
    return tuple(row) if row else None


@recipe.variant
def keyset(run, p):
    """Seek past the cursor with a row comparison

    WHERE (created_at, id) < (:created_at, :id) ORDER BY created_at DESC, id DESC LIMIT :size
    """
    stmt = select(Document).order_by(Document.created_at.desc(), Document.id.desc()).limit(p.size)
    cursor = run.prepared["cursor"]
    if cursor is not None:
        stmt = stmt.where(tuple_(Document.created_at, Document.id) < tuple_(*cursor))
    with run.session() as session:
        documents = session.scalars(run.main(stmt)).all()
    if documents:
        run.metric("next_cursor", [documents[-1].created_at, documents[-1].id])
    return Rows.of(documents, *COLUMNS)


@recipe.variant
def keyset_mismatched_order(run, p):
    """ORDER BY created_at DESC, id ASC: the trap

    The tie-breaker runs the other way from the index (and from the cursor comparison), so the
    index can no longer hand rows over in the order asked for.
    """
    stmt = select(Document).order_by(Document.created_at.desc(), Document.id.asc()).limit(p.size)
    cursor = run.prepared["cursor"]
    if cursor is not None:
        stmt = stmt.where(tuple_(Document.created_at, Document.id) < tuple_(*cursor))
    with run.session() as session:
        documents = session.scalars(run.main(stmt)).all()
    return Rows.of(documents, *COLUMNS)


@recipe.notes
def notes(result):
    lines = []
    if (line := rows_read_line(result)) is not None:
        lines.append(line)
    cursor = result.metrics.get("next_cursor")
    if cursor:
        lines.append(f"Next page: WHERE (created_at, id) < ('{cursor[0]}', {cursor[1]}).")
    return lines


# --- questions and challenges ---
recipe.learn(
    Question(
        "rows-read",
        "How many rows will Postgres read to fetch page {page:,} with the {index} index?",
        answer="rows_read",
        close=0.1,
    ),
    Question(
        "sort",
        "With the {index} index, will the plan need a Sort node?",
        answer="sorts",
        choices=("yes", "no"),
    ),
    Challenge(
        "page-5000",
        "Fetch page {page:,} reading at most 50 rows",
        checks=(Check("rows_read", at_most=50), Check("rows_returned", at_least=1)),
        params={"page": 5000},
    ),
)
