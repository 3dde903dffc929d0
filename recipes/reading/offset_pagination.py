"""Offset pagination: numbered pages with LIMIT and OFFSET.

Reach for it when people jump to arbitrary page numbers of a small or medium table, such as an
admin list. It needs an ORDER BY that breaks ties, or rows that share a sort value may land on
two pages or on none, and Postgres still walks past every skipped row: the deeper the page, the
more it reads to throw away.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select, tuple_

from recipes import params
from recipes.base import Param, Recipe, Rows, SweepDefaults
from recipes.datasets import DOCUMENTS, Document
from recipes.learning import Challenge, Check, Question
from recipes.measures import SCAN_CHOICES
from recipes.notes import plan_of, rows_read_line

# Shared with keyset pagination, so a sweep draws both over the same tables and indexes.
TABLE_ROWS = params.rows(200_000, min=1_000, max=1_000_000, table="documents", sweepable=False)
INDEXES = {
    "composite": {"ix_documents_created_id"},
    "created_at": {"ix_documents_created_at"},
    "none": set(),
}
INDEX = Param(
    "index",
    "choice",
    "composite",
    label="Index",
    choices=tuple(INDEXES),
    help="composite = (created_at DESC, id DESC); created_at = one column; none.",
)
PAGES = Param(
    "pages",
    "int",
    5,
    label="Pages to turn",
    min=1,
    max=20,
    help="The page-turning variants read this many pages one after the other, from the page above, "
    "then check them against the order with ties broken by id.",
)

recipe = Recipe(
    slug="offset-pagination",
    title="Offset pagination",
    section="Reading",
    summary=__doc__,
    companions=("keyset-pagination",),
    # Rows read grow with OFFSET's depth and stay flat for keyset: the lesson, without timing noise.
    sweep_defaults=SweepDefaults(
        y="rows_read", ends={"page": params.last_page}, lines=("offset", "offset-unordered")
    ),
    params=(
        params.page(label="Page", help="Page number; the first row shown is (page − 1) × size."),
        params.PAGE_SIZE,
        TABLE_ROWS,
        INDEX,
        PAGES,
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
PAGE_COLUMNS = ("page", "rows", "ids", "shown twice", "never shown")


@recipe.setup
def prepare(setup, p):
    setup.dataset(DOCUMENTS, rows=p.rows, owners=1000)
    # The same choice of index as keyset pagination, so switching between them rebuilds nothing.
    setup.indexes(DOCUMENTS, INDEXES[p.index])


@recipe.helper
def check_pages(run, session, p, pages, after=None):
    """Hold the pages shown against ORDER BY created_at DESC, id DESC, where every row has one place.

    The rows passed over run from where the first page starts (below the cursor `after`, or past
    the rows OFFSET skips) to the furthest row any page showed; among them, count the rows shown
    twice and the rows never shown. One row per page comes back.
    """
    documents = [d for page in pages for d in page]
    seen = Counter(d.id for d in documents)
    passed = []
    if documents:
        furthest = min((d.created_at, d.id) for d in documents)
        key = tuple_(Document.created_at, Document.id)
        stmt = select(Document.id, Document.created_at).where(key >= tuple_(*furthest))
        stmt = stmt.order_by(Document.created_at.desc(), Document.id.desc())
        # A cursor bounds the rows from above; an OFFSET walk can only skip as many as it did.
        start = key < tuple_(*after) if after is not None else None
        stmt = stmt.where(start) if start is not None else stmt.offset((p.page - 1) * p.size)
        passed = session.execute(stmt).all()
    never = [row.id for row in passed if row.id not in seen]
    run.metric("rows_shown", len(documents))
    run.metric("rows_passed", len(passed))
    run.metric("shown_twice", sum(n - 1 for n in seen.values()))
    run.metric("never_shown", len(never))
    run.metric("largest_tie", max(Counter(row.created_at for row in passed).values(), default=0))
    return Rows(PAGE_COLUMNS, page_rows(p, pages, [row.id for row in passed], never))


@recipe.helper
def page_rows(p, pages, order, never):
    """Per page: its ids, those an earlier page showed, and those it stepped over for good."""
    place = {doc_id: k for k, doc_id in enumerate(order)}
    shown, reached, data = set(), -1, []
    for number, page in enumerate(pages, start=p.page):
        ids = [d.id for d in page]
        again = [i for i in ids if i in shown]
        shown.update(ids)
        before = reached
        reached = max([reached, *(place[i] for i in ids if i in place)])
        skipped = [i for i in never if before < place[i] < reached]
        span = f"{ids[0]} … {ids[-1]}" if ids else ""
        data.append((number, len(ids), span, ", ".join(map(str, again)), ", ".join(map(str, skipped))))
    return data


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


@recipe.variant
def offset_created_at_only(run, p):
    """ORDER BY created_at alone, page after page: a tied row may show twice or never (the trap)

    Rows that share a created_at have no order among themselves. Each page is a new query, and
    its plan decides afresh which of the tied rows fall before the OFFSET and which after it.
    """
    newest_first = select(Document).order_by(Document.created_at.desc()).limit(p.size)
    pages = []
    with run.session() as session:
        for number in range(p.pages):
            page = newest_first.offset((p.page - 1 + number) * p.size)
            pages.append(session.scalars(run.main(page) if number == 0 else page).all())
        return check_pages(run, session, p, pages)


@recipe.notes
def notes(result):
    lines = []
    if "shown_twice" in result.metrics:
        lines += pages_lines(result, "OFFSET")
        if (summary := plan_of(result)) is not None:
            lines.append(source_line(summary))
    elif (line := rows_read_line(result)) is not None:
        lines.append(line)
    if result.rows and result.rows.total == 0:
        lines.append("This page is past the last row: OFFSET skipped everything.")
    if result.variant == "offset-unordered" and result.rows and result.rows.data:
        ids = [row[0] for row in result.rows.data]
        order = "ascending id (the heap's insertion order)" if ids == sorted(ids) else "no visible order"
        lines.append(f"Rows came back in {order}, not newest first: nothing asked for an order.")
    return lines


def pages_lines(result, how):
    """What turning the pages showed, against the order with ties broken by id (both recipes use it)."""
    m = result.metrics
    pages = result.rows.total if result.rows else 0
    lines = [
        f"{pages} page{'s' if pages != 1 else ''} by {how} showed {m['rows_shown']:,} rows and passed over "
        f"{m['rows_passed']:,}: against ORDER BY created_at DESC, id DESC, {m['shown_twice']:,} "
        f"{'was' if m['shown_twice'] == 1 else 'were'} shown twice and {m['never_shown']:,} never shown."
    ]
    if m["largest_tie"] > 1:
        lines.append(f"Up to {m['largest_tie']} of the rows passed over share one created_at.")
    if result.variant.endswith("created-at-only") and m["shown_twice"] == m["never_shown"] == 0:
        lines.append(
            "These pages happened to agree: nothing in ORDER BY created_at decides the order of tied rows, "
            "so it is whatever each page's plan leaves them in."
        )
    return lines


def source_line(summary):
    """Where the first page's plan took its order from: a sort, or an index read in its order."""
    sort = next((n for n in summary.nodes if "Sort" in n.node_type), None)
    scan = summary.key_scan.label if summary.key_scan else "no table"
    if sort is None:
        how = f"{scan}, read in the index's order"
    else:
        detail = "; ".join(d for d in sort.details if d.startswith(("Presorted Key", "Sort Method")))
        how = f"{'an' if sort.node_type[0] in 'AEIOU' else 'a'} {sort.node_type} ({detail}) over {scan}"
    return (
        f"The first page's order came from {how}: {summary.rows_read:,} rows read, "
        f"{summary.execution_ms:.2f} ms in all."
    )


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
