"""Kill N+1 with eager loading.

Reach for it when you load a list of parents and then touch a relationship on each: authors and
their books, orders and their lines. Lazy loading sends one more query per parent, so a page of
fifty authors costs fifty-one round trips. An eager loader option on the query collapses that to
a fixed number of queries, each with its own shape and cost.
"""

from __future__ import annotations

import re
from collections import Counter

from sqlalchemy import orm, select

from recipes.base import Cost, Param, Recipe, Rows
from recipes.datasets import LIBRARY, REVIEWS_PER_BOOK, Author, Book
from recipes.learning import Challenge, Check, Question

recipe = Recipe(
    slug="eager-loading",
    title="Kill N+1 with eager loading",
    section="Reading",
    summary=__doc__,
    variant_alias="strategy",
    params=(
        Param("authors", "int", 50, label="Authors", min=1, max=2000, sweepable=True),
        Param("books_per_author", "int", 5, label="Books per author", min=0, max=50),
        Param(
            "direction",
            "choice",
            "authors-books",
            label="Direction",
            choices=("authors-books", "books-author"),
            help="authors-books loads a collection; books-author loads each book's single author.",
        ),
        Param(
            "nested",
            "bool",
            False,
            label="Also load each book's reviews",
            help="A second hop: options must be chained to reach it.",
        ),
        Param(
            "limit",
            "int",
            0,
            label="LIMIT",
            min=0,
            max=2000,
            help="0 = no limit. With joinedload on a collection, watch what the LIMIT applies to.",
        ),
    ),
    docs=(
        (
            "SQLAlchemy: relationship loading techniques",
            "https://docs.sqlalchemy.org/en/20/orm/queryguide/relationships.html",
        ),
        (
            "SQLAlchemy: the N+1 problem",
            "https://docs.sqlalchemy.org/en/20/glossary.html#term-N-plus-one-problem",
        ),
    ),
)


MAX_QUERIES = 5_000
MAX_ROWS = 150_000


PER_PARENT = ("lazy", "immediateload")
"""The strategies that send one more query per parent."""


@recipe.cost
def cost(variant, p):
    books = p.authors * p.books_per_author
    queries = 3  # the eager strategies: a few statements, however many parents
    if variant in PER_PARENT:
        queries = 1 + (p.authors if p.direction == "authors-books" else min(p.authors, books))
        queries += books if p.nested else 0
    elif variant == "selectinload-one-hop":
        queries = 2 + books  # the authors, their books, then each book's reviews
    reviews = p.nested or variant == "selectinload-one-hop"
    rows = books * (1 + (REVIEWS_PER_BOOK if reviews else 0)) + p.authors
    return Cost(statements=queries, rows=rows)


@recipe.guard
def limits(variant, p):
    """Refuse runs that would tie up a shared instance for many seconds."""
    expected = cost(variant, p)
    if variant in (*PER_PARENT, "selectinload-one-hop") and expected.statements > MAX_QUERIES:
        return {
            "authors": f"{variant} would send about {expected.statements:,} queries; one run may send at "
            f"most {MAX_QUERIES:,}. Lower authors or books per author."
        }
    if expected.rows > MAX_ROWS:
        return {
            "books_per_author": f"this run would load about {expected.rows:,} rows; one run may load at most "
            f"{MAX_ROWS:,}."
        }
    return {}


@recipe.setup
def prepare(setup, p):
    setup.dataset(LIBRARY, authors=p.authors, books_per_author=p.books_per_author)


@recipe.helper
def load(run, p, authors, books):
    """Run the statement for the chosen direction, then touch every relationship the page shows.

    `authors` loads authors with their books (a collection); `books` loads books with their
    author (many-to-one). The order and the LIMIT are the same for every strategy.
    """
    if p.direction == "books-author":
        stmt, columns = books.order_by(Book.id), ("book", "author")
    else:
        stmt, columns = authors.order_by(Author.id), ("author", "books", "reviews")
    if p.limit:
        stmt = stmt.limit(p.limit)
    with run.session() as session:
        parents = session.scalars(run.main(stmt)).unique().all()
        if p.direction == "books-author":
            data = [(book.title, book.author.name) for book in parents]
        else:
            data = [
                (a.name, len(a.books), sum(len(b.reviews) for b in a.books) if p.nested else None)
                for a in parents
            ]
        run.metric("parents_loaded", len(parents))
        run.metric("books_loaded", len(parents) if p.direction == "books-author" else sum(r[1] for r in data))
        run.metric("objects_built", len(session.identity_map))
    return Rows(columns, data)


@recipe.variant
def lazy(run, p):
    """lazy (the default): one more SELECT each time a relationship is touched"""
    books = orm.lazyload(Author.books)
    if p.nested:
        books = books.lazyload(Book.reviews)  # chained: a second hop needs its own option
    return load(run, p, select(Author).options(books), select(Book).options(orm.lazyload(Book.author)))


@recipe.variant
def selectinload(run, p):
    """selectinload: one more SELECT … WHERE id IN (…) for all parents at once"""
    books = orm.selectinload(Author.books)
    if p.nested:
        books = books.selectinload(Book.reviews)
    return load(run, p, select(Author).options(books), select(Book).options(orm.selectinload(Book.author)))


@recipe.variant
def joinedload(run, p):
    """joinedload: a LEFT OUTER JOIN in the same query, parent columns repeated per child"""
    books = orm.joinedload(Author.books)
    if p.nested:
        books = books.joinedload(Book.reviews)
    # A joined collection repeats each author per book: load() calls .unique() on the result.
    return load(run, p, select(Author).options(books), select(Book).options(orm.joinedload(Book.author)))


@recipe.variant
def subqueryload(run, p):
    """subqueryload: a second query that re-runs the first one as a subquery"""
    books = orm.subqueryload(Author.books)
    if p.nested:
        books = books.subqueryload(Book.reviews)
    return load(run, p, select(Author).options(books), select(Book).options(orm.subqueryload(Book.author)))


@recipe.variant
def immediateload(run, p):
    """immediateload: the lazy loads, fired as each parent is built instead of when touched"""
    books = orm.immediateload(Author.books)
    if p.nested:
        books = books.immediateload(Book.reviews)
    return load(run, p, select(Author).options(books), select(Book).options(orm.immediateload(Book.author)))


@recipe.variant(
    fails="touching a relationship the query did not load raises instead of loading it",
    fails_with="lazy='raise'",
)
def raiseload(run, p):
    """raiseload: touching an unloaded relationship is an error, so N+1 cannot sneak in"""
    books = orm.raiseload(Author.books)
    if p.nested:
        books = books.raiseload(Book.reviews)
    return load(run, p, select(Author).options(books), select(Book).options(orm.raiseload(Book.author)))


@recipe.variant
def selectinload_one_hop(run, p):
    """selectinload on the books only, then every book's reviews read: the N+1 moves down a level (the trap)

    Authors → books → reviews, whatever the direction: the option reaches the books, and nothing
    chained to it (.selectinload(Book.reviews)) reaches the reviews, so each book loads its own.
    """
    stmt = select(Author).options(orm.selectinload(Author.books)).order_by(Author.id)
    if p.limit:
        stmt = stmt.limit(p.limit)
    with run.session() as session:
        authors = session.scalars(run.main(stmt)).all()
        data = [(a.name, len(a.books), sum(len(b.reviews) for b in a.books)) for a in authors]
        run.metric("parents_loaded", len(authors))
        run.metric("books_loaded", sum(books for _, books, _ in data))
        run.metric("objects_built", len(session.identity_map))
    return Rows(("author", "books", "reviews"), data)


@recipe.variant(
    fails="a joined collection repeats each parent per child; SQLAlchemy wants unique() to fold them",
    fails_with="unique() method must be invoked",
)
def joinedload_without_unique(run, p):
    """joinedload on a collection, the result read without .unique(): SQLAlchemy's own error

    A many-to-one (direction books-author) repeats nothing, so there the same code works.
    """
    if p.direction == "books-author":
        stmt = select(Book).options(orm.joinedload(Book.author)).order_by(Book.id)
    else:
        stmt = select(Author).options(orm.joinedload(Author.books)).order_by(Author.id)
    with run.session() as session:
        parents = session.scalars(run.main(stmt)).all()  # no .unique() between scalars() and all()
        run.metric("parents_loaded", len(parents))
    return Rows(("id",), [(parent.id,) for parent in parents])


@recipe.notes
def notes(result):
    queries = [s for s in result.statements if s.kind == "query"]
    if not queries:
        return []
    shapes = Counter(s.shape for s in queries)
    repeated = max(shapes.values())
    fetched = sum(s.rowcount or 0 for s in queries)
    lines = [f"{len(queries)} quer{'y' if len(queries) == 1 else 'ies'}, {len(shapes)} distinct shape(s)."]
    if result.variant == "selectinload" and repeated > 1:
        lines.append(f"The IN list was split: {repeated} statements of one shape, one per chunk of keys.")
    elif repeated > 2:
        lines.append(n_plus_one_line(result, queries, shapes))
    if result.variant == "joinedload-without-unique" and not result.ok:
        lines.append(
            f"The joined query ran and {queries[0].rowcount or 0:,} rows came back; SQLAlchemy then refused "
            "to turn them into a list without .unique()."
        )
    built = result.metrics.get("objects_built")
    if built is not None:
        lines.append(f"{fetched:,} rows fetched over the wire; {built:,} distinct objects built from them.")
    parents = result.metrics.get("parents_loaded", 0)
    if result.variant == "joinedload" and result.params["direction"] == "authors-books" and parents:
        lines.append(
            "The joined rows repeat each author's columns once per book: "
            f"{fetched:,} rows for {parents:,} authors."
        )
        if result.params["limit"]:
            where = (
                "inside a subquery on authors"
                if "LIMIT" in queries[0].sql.split("JOIN")[0]
                else "to the rows"
            )
            lines.append(
                f"SQLAlchemy applied the LIMIT {where}: {parents:,} authors came back, with all their books."
            )
    if (
        result.params["direction"] == "books-author"
        and result.variant in ("lazy", "immediateload")
        and repeated > 1
    ):
        lines.append(
            f"Only {repeated} lazy loads for {parents:,} books: one per distinct author. A repeat author is "
            "found in the session's identity map, so no query is sent for it."
        )
    return lines


def n_plus_one_line(result, queries, shapes):
    """Which table the repeated query reads, how often, and against how many parents it was sent."""
    shape, repeated = shapes.most_common(1)[0]
    table = re.search(r"\bFROM (\w+)", shape).group(1)
    line = f"One shape, SELECT … FROM {table}, was sent {repeated} times with different parameters"
    line += ": the N+1 pattern"
    per = {"reviews": ("book", "books_loaded"), "books": ("author", "parents_loaded")}.get(table)
    if per and result.metrics.get(per[1]) == repeated:
        line += f", one query per {per[0]}"
    books = [q for q in queries if re.search(r"\bFROM books\b", q.shape)]
    if table == "reviews" and books and len(books) < result.metrics.get("parents_loaded", 0):
        line += (
            f". The books came in {len(books)} quer{'y' if len(books) == 1 else 'ies'}: "
            "the N+1 moved one level down, to their reviews"
        )
    return line + "."


# --- questions and challenges ---
recipe.learn(
    Question(
        "lazy-queries",
        "How many queries will lazy loading send for {authors} authors?",
        answer="queries",
        variant="lazy",
        why=lambda r: (
            f"One SELECT for the authors, then one more each time an author's books were touched: "
            f"{r.query_count - 1} more."
        ),
    ),
    Question(
        "joined-rows",
        "How many rows will joinedload bring over the wire for {authors} authors with {books_per_author} "
        "books each?",
        answer="rows_fetched",
        variant="joinedload",
        why=lambda r: (
            f"{r.figures.rows_fetched:,} joined rows: each author's columns come back once per book "
            f"(once with NULLs when it has none), for {r.metrics['parents_loaded']:,} authors."
        ),
    ),
    Challenge(
        "two-queries",
        "Load {authors} authors with their books in at most 2 queries",
        checks=(Check("queries", at_most=2), Check("errors", at_most=0)),
        params={"authors": 50, "direction": "authors-books"},
    ),
)
