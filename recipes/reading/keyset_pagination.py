"""Keyset (seek) pagination: continue after the last row seen.

Reach for it for "load more" and infinite scroll, or whenever people page deep into a big table.
The cursor is the last row's (created_at, id); with an index in exactly the ORDER BY's order,
Postgres seeks straight to it and reads one page of rows whatever the depth. It cannot jump to
page 47. The cursor must name a unique position and compare the way the ORDER BY runs: a cursor
on created_at alone, or an id sorted against the comparison, shows rows twice or steps over them.
"""

from __future__ import annotations

from sqlalchemy import select, text, tuple_

from recipes import params
from recipes.base import Recipe, Rows, SweepDefaults
from recipes.datasets import DOCUMENTS, Document
from recipes.learning import Challenge, Check, Question
from recipes.notes import plan_of, rows_read_line
from recipes.reading.offset_pagination import (
    INDEX,
    INDEXES,
    PAGES,
    TABLE_ROWS,
    check_pages,
    page_rows,
    pages_lines,
    source_line,
)

recipe = Recipe(
    slug="keyset-pagination",
    title="Keyset pagination",
    section="Reading",
    summary=__doc__,
    companions=("offset-pagination",),
    # Rows read grow with OFFSET's depth and stay flat for keyset: the lesson, without timing noise.
    sweep_defaults=SweepDefaults(
        y="rows_read", ends={"page": params.last_page}, lines=("keyset", "keyset-mismatched-order")
    ),
    params=(
        params.page(
            label="Page depth", help="Which page to fetch: the cursor is the last row of the page before it."
        ),
        params.PAGE_SIZE,
        TABLE_ROWS,
        INDEX,
        PAGES,
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
# Shared with offset pagination: the page-turning variants are checked the same way.
recipe.helper(check_pages)
recipe.helper(page_rows)

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


@recipe.helper
def follow(run, p, first, page_after, cursor_of, cursor):
    """Turn p.pages pages: `first` when there is no cursor yet, then `page_after(cursor)`, the cursor
    taken from each page's last row as an application would. The first page is the one EXPLAINed."""
    pages = []
    with run.session() as session:
        for number in range(p.pages):
            stmt = first if cursor is None else page_after(cursor)
            page = session.scalars(run.main(stmt) if number == 0 else stmt).all()
            pages.append(page)
            if not page:
                break
            cursor = cursor_of(page[-1])
        return check_pages(run, session, p, pages, after=run.prepared["cursor"])


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
    """ORDER BY created_at DESC, id ASC under the (created_at, id) < cursor: the trap

    The id runs upwards inside each created_at while the row comparison moves the cursor
    downwards. Page after page, the cursor lands inside a tie and lets an earlier row of it back in
    while it shuts a later one out.
    """
    newest_first = select(Document).order_by(Document.created_at.desc(), Document.id.asc()).limit(p.size)

    def page_after(cursor):
        return newest_first.where(tuple_(Document.created_at, Document.id) < tuple_(*cursor))

    return follow(run, p, newest_first, page_after, lambda d: (d.created_at, d.id), run.prepared["cursor"])


@recipe.variant
def keyset_created_at_only(run, p):
    """A cursor on created_at alone: WHERE created_at < :last steps over the rest of a tie (the trap)

    created_at is not unique: when a page ends inside a group of rows that share one, the next
    page starts strictly below it and the rest of the group is never shown.
    """
    newest_first = select(Document).order_by(Document.created_at.desc()).limit(p.size)

    def page_after(created_at):
        return newest_first.where(Document.created_at < created_at)

    start = run.prepared["cursor"]
    return follow(run, p, newest_first, page_after, lambda d: d.created_at, start and start[0])


@recipe.notes
def notes(result):
    lines = []
    if "shown_twice" in result.metrics:
        lines += pages_lines(result, "cursor")
        if (summary := plan_of(result)) is not None:
            lines.append(source_line(summary))
    elif (line := rows_read_line(result)) is not None:
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
