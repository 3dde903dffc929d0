"""Full-text search with tsvector, tsquery and a GIN index.

Reach for it when people type words into a search box over your own text (articles, tickets,
product descriptions) and expect "run" to find "running", the best matches first and the matching
words highlighted. ILIKE '%word%' finds substrings only, cannot rank, and reads the whole table.
Postgres turns the text into a tsvector of normalised words and the search into a tsquery; a GIN
index over the same expression finds the matching rows without reading the rest. The index serves
the query only when the query's expression is exactly the indexed one, text-search config included.

The text is real English: the prose paragraphs of the Python reference documentation that ship
with the standard library (`pydoc_data.topics`), about 700 of them, repeated in the same order to
reach `rows` articles, so a search finds every copy of a matching paragraph.
"""

from __future__ import annotations

import re
from pydoc_data.topics import topics

from sqlalchemy import BigInteger, Computed, Identity, Text, func, insert, select, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from recipes import params
from recipes.base import Param, Recipe, Rows
from recipes.datasets import Base, Dataset
from recipes.learning import Challenge, Check, Question
from recipes.notes import plan_of
from recipes.results import HIGHLIGHT_START, HIGHLIGHT_STOP


class Paragraph(Base):
    __tablename__ = "pydoc_paragraphs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english', body)", persisted=True)
    )


def paragraphs() -> list[dict[str, str]]:
    """Prose paragraphs of the bundled Python docs: code blocks, grammar and short lines left out."""
    found: dict[str, str] = {}
    for topic in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[topic]):
            body = " ".join(block.split())
            if block[:1].isspace() or len(body) < 80 or body in found:
                continue
            if sum(c.isalpha() or c == " " for c in body) / len(body) >= 0.85:
                found[body] = topic
    return [{"topic": topic, "body": body} for body, topic in found.items()]


class ParagraphSource(Dataset):
    """The distinct paragraphs, sent once in one executemany; articles are built from them in SQL."""

    def build(self, conn, size, *, analyze=True):
        super().build(conn, size, analyze=False)
        conn.execute(insert(Paragraph), paragraphs())
        if analyze:
            conn.execute(text("ANALYZE pydoc_paragraphs"))


PARAGRAPHS = ParagraphSource(name="pydoc_paragraphs", models=(Paragraph,), seed_sql=())
ARTICLES = Dataset(
    name="articles",
    models=(Article,),
    seed_sql=(
        """INSERT INTO articles (id, topic, body) OVERRIDING SYSTEM VALUE
           SELECT i, p.topic, p.body
           FROM generate_series(1, :rows) AS i
           JOIN pydoc_paragraphs AS p ON p.id = 1 + (i - 1) % :paragraphs""",
    ),
    indexes={
        # Written as text: func.to_tsvector() binds 'english' as a parameter, which DDL cannot hold.
        "ix_articles_body_tsv": (
            "CREATE INDEX ix_articles_body_tsv ON articles USING gin (to_tsvector('english', body))"
        ),
        "ix_articles_search_vector": (
            "CREATE INDEX ix_articles_search_vector ON articles USING gin (search_vector)"
        ),
    },
)
INDEXES = {
    "none": set(),
    "expression-gin": {"ix_articles_body_tsv"},
    "generated-column-gin": {"ix_articles_search_vector"},
}
PARSERS = {
    "plain": func.plainto_tsquery,
    "websearch": func.websearch_to_tsquery,
    "phrase": func.phraseto_tsquery,
}
HEADLINE = f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_STOP}, MaxFragments=2, MaxWords=18, MinWords=6"
PAGE = 20

recipe = Recipe(
    slug="full-text-search",
    title="Full-text search",
    section="Performance",
    summary=__doc__,
    params=(
        Param(
            "q",
            "str",
            "raising exceptions",
            label="Search",
            max_length=200,
            help="What a person typed; it is only ever sent as a bound parameter.",
        ),
        Param(
            "parser",
            "choice",
            "plain",
            label="Query parser",
            choices=tuple(PARSERS),
            help='plain: all words; websearch: "quoted phrases", or, -not; phrase: words next to each other.',
        ),
        Param(
            "config",
            "choice",
            "english",
            label="Text-search config",
            choices=("english", "simple"),
            help="english stems words and drops stop words; simple only lower-cases. Indexes use english.",
        ),
        Param("index", "choice", "expression-gin", label="Index", choices=tuple(INDEXES)),
        Param("rank", "choice", "ts_rank", label="Rank", choices=("none", "ts_rank", "ts_rank_cd")),
        Param("headline", "bool", True, label="Highlighted snippets (ts_headline)"),
        params.rows(10_000, min=1_000, max=100_000, table="articles", label="Articles"),
    ),
    docs=(
        ("PostgreSQL: full text search", "https://www.postgresql.org/docs/current/textsearch-intro.html"),
        (
            "PostgreSQL: parsing queries",
            "https://www.postgresql.org/docs/current/textsearch-controls.html#TEXTSEARCH-PARSING-QUERIES",
        ),
        (
            "PostgreSQL: GIN indexes for text search",
            "https://www.postgresql.org/docs/current/textsearch-indexes.html",
        ),
        (
            "SQLAlchemy: PostgreSQL full text search",
            "https://docs.sqlalchemy.org/en/20/dialects/postgresql.html#full-text-search",
        ),
    ),
)


@recipe.setup
def prepare(setup, p):
    count = len(paragraphs())
    setup.dataset(PARAGRAPHS, paragraphs=count)
    setup.dataset(ARTICLES, rows=p.rows, paragraphs=count)
    setup.indexes(ARTICLES, INDEXES[p.index])


@recipe.helper
def search(run, p, where, document, query):
    """Up to 20 matches (ranked when asked, with snippets when asked), plus how many matched."""
    columns = [Article.id, Article.topic]
    order = [Article.id]
    if p.rank != "none" and query is not None:
        rank = getattr(func, p.rank)(document, query)
        columns.append(rank.label("rank"))
        order = [rank.desc(), Article.id]
    if p.headline and query is not None:
        columns.append(func.ts_headline(p.config, Article.body, query, HEADLINE).label("snippet"))
    else:
        columns.append(func.left(Article.body, 160).label("text"))
    stmt = select(*columns).where(where).order_by(*order).limit(PAGE)
    with run.session() as session:
        found = session.execute(run.main(stmt)).all()
        run.metric("matches", session.scalar(select(func.count()).select_from(Article).where(where)))
    return Rows(tuple(stmt.selected_columns.keys()), [tuple(row) for row in found])


@recipe.variant
def ilike(run, p):
    """body ILIKE '%…%': the substring search everyone starts with (the trap)

    No stemming, no ranking, no snippet, and no B-tree can help with a leading wildcard.
    """
    return search(run, p, Article.body.icontains(p.q, autoescape=True), None, None)


@recipe.variant
def tsquery(run, p):
    """to_tsvector(…) @@ a parsed tsquery, matching the chosen index"""
    query = PARSERS[p.parser](p.config, p.q)
    if p.index == "generated-column-gin":
        document = Article.search_vector  # the stored, indexed column (always english)
    else:
        document = func.to_tsvector(p.config, Article.body)
    return search(run, p, document.bool_op("@@")(query), document, query)


@recipe.variant
def mismatched_config(run, p):
    """The same search with the 'simple' config, while the index was built with 'english' (the trap)

    to_tsvector('simple', body) is another expression than the indexed to_tsvector('english', body),
    so no index can answer it, whichever one is built.
    """
    query = PARSERS[p.parser]("simple", p.q)
    document = func.to_tsvector("simple", Article.body)
    return search(run, p, document.bool_op("@@")(query), document, query)


@recipe.notes
def notes(result):
    lines = []
    matches = result.metrics.get("matches")
    if matches is not None:
        lines.append(f"{matches:,} of {result.params['rows']:,} articles matched.")
    summary = plan_of(result)
    if summary is not None:
        gin = [n for n in summary.nodes if n.index and n.node_type.startswith("Bitmap Index")]
        if gin:
            lines.append(
                f"{gin[0].label} found the candidates; the table was read only for them "
                f"({summary.execution_ms:.2f} ms)."
            )
        elif summary.key_scan is not None:
            lines.append(
                f"{summary.key_scan.label}: {summary.key_scan.rows_read:,} rows read, each one's text "
                f"tested, {summary.execution_ms:.2f} ms. No index served this query."
            )
    return lines


# --- questions and challenges ---
recipe.learn(
    Question(
        "index-used",
        "With the {index} index, will {variant} use an index?",
        answer="index_used",
        choices=("yes", "no"),
    ),
    Question(
        "matches",
        'How many of {rows:,} articles will match "{q}"?',
        answer="metric:matches",
        close=0.1,
    ),
    Challenge(
        "no-seq-scan",
        "Find the articles matching your search without reading the whole table",
        checks=(Check("nodes", excludes="Seq Scan"), Check("metric:matches", at_least=1)),
    ),
)
