"""Offset pagination: numbered pages with LIMIT and OFFSET.

Reach for it when people jump to arbitrary page numbers of a small or medium table, such as an
admin list. It needs an ORDER BY that breaks ties, or pages overlap and lose rows, and Postgres
still walks past every skipped row: the deeper the page, the more it reads to throw away.
"""

from __future__ import annotations

from sqlalchemy import func, select

from recipes import params
from recipes.base import Recipe, Rows
from recipes.datasets import DOCUMENTS, Document
from recipes.learning import Challenge, Check, Question
from recipes.measures import SCAN_CHOICES
from recipes.notes import rows_read_line

# Shared with keyset pagination, so a sweep draws both over the same tables.
TABLE_ROWS = params.rows(200_000, min=1_000, max=1_000_000, table="documents", sweepable=False)

recipe = Recipe(
    slug="offset-pagination",
    title="Offset pagination",
    section="Reading",
    summary=__doc__,
    companions=("keyset-pagination",),
    params=(
        params.page(label="Page", help="Page number; the first row shown is (page − 1) × size."),
        params.PAGE_SIZE,
        TABLE_ROWS,
    ),
    docs=(
        ("PostgreSQL: LIMIT and OFFSET", "https://www.postgresql.org/docs/current/queries-limit.html"),
        (
            "SQLAlchemy: Select.limit / offset",
            "https://docs.sqlalchemy.org/en/20/core/selectable.html#sqlalchemy.sql.expression.Select.offset",
        ),
    ),
)

COLUMNS = ("id", "title", "created_at")


@recipe.setup
def prepare(setup, p):
    setup.dataset(DOCUMENTS, rows=p.rows, owners=1000)
    # The same index keyset pagination uses, so switching between them rebuilds nothing.
    setup.indexes(DOCUMENTS, {"ix_documents_created_id"})


@recipe.variant
def offset(run, p):
    """OFFSET with a deterministic ORDER BY, plus a count for "page X of Y"

    Newest first, ties on created_at broken by id, so every row lands on exactly one page.
    """
    page = (
        select(Document)
        .order_by(Document.created_at.desc(), Document.id.desc())
        .limit(p.size)
        .offset((p.page - 1) * p.size)
    )
    with run.session() as session:
        documents = session.scalars(run.main(page)).all()
        total = session.scalar(select(func.count()).select_from(Document))
    run.metric("total_rows", total)
    run.metric("pages", -(-total // p.size))
    return Rows.of(documents, *COLUMNS)


@recipe.variant
def offset_unordered(run, p):
    """OFFSET without ORDER BY: the trap

    SQL promises no order without ORDER BY. Postgres hands back whatever is cheapest (here the
    heap's physical order), which changes as rows are updated or when a plan changes.
    """
    page = select(Document).limit(p.size).offset((p.page - 1) * p.size)
    with run.session() as session:
        documents = session.scalars(run.main(page)).all()
    return Rows.of(documents, *COLUMNS)


@recipe.notes
def notes(result):
    lines = []
    if (line := rows_read_line(result)) is not None:
        lines.append(line)
    if result.rows and result.rows.total == 0:
        lines.append("This page is past the last row: OFFSET skipped everything.")
    if result.variant == "offset-unordered" and result.rows and result.rows.data:
        ids = [row[0] for row in result.rows.data]
        order = "ascending id (the heap's insertion order)" if ids == sorted(ids) else "no visible order"
        lines.append(f"Rows came back in {order}, not newest first: nothing asked for an order.")
    return lines


# --- questions and challenges ---
recipe.learn(
    Question(
        "rows-read",
        "How many rows will Postgres read to show page {page:,} ({size} rows a page)?",
        answer="rows_read",
        close=0.1,
        why=lambda r: (
            f"Page {r.params['page']:,} starts after {(r.params['page'] - 1) * r.params['size']:,} "
            f"rows; OFFSET reads each of them and throws it away: {r.figures.rows_read:,} read in all."
        ),
    ),
    Question(
        "scan",
        "Which scan will read the most rows for this page?",
        answer="key_scan",
        choices=SCAN_CHOICES,
    ),
    Challenge(
        "page-50-budget",
        "Serve page {page} reading at most 1,000 rows",
        checks=(Check("rows_read", at_most=1000), Check("rows_returned", at_least=1)),
        params={"page": 50},
    ),
)
