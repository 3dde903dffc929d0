"""Full-text search with tsvector, tsquery and a GIN index.

Reach for it when people type words into a search box over your own text (articles, tickets,
product descriptions) and expect "run" to find "running", the best matches first and the matching
words highlighted. ILIKE '%word%' finds substrings only, cannot rank, and no index finds its matches:
Postgres tests the text of row after row until it has enough (and of every row to count them all).
Postgres turns the text into a tsvector of normalised words and the search into a tsquery; a GIN
index over the same expression finds the matching rows without reading the rest. The index serves
the query only when the query's expression is exactly the indexed one, text-search config included.

The text is real English: the prose paragraphs of the Python reference documentation that ship
with the standard library (`pydoc_data.topics`), about 700 of them, repeated in the same order to
reach `rows` articles, so a search finds every copy of a matching paragraph.
"""

from __future__ import annotations

import re

from sqlalchemy import cast, func, select
from sqlalchemy.dialects.postgresql import REGCONFIG, TSQUERY

from recipes import params
from recipes.base import Param, Recipe, Rows
from recipes.datasets.articles import ARTICLES, PARAGRAPHS, Article, Paragraph, paragraphs
from recipes.learning import Challenge, Check, Question
from recipes.notes import plan_of
from recipes.results import HIGHLIGHT_START, HIGHLIGHT_STOP
from recipes.text_search_notes import no_match_line, scan_lines

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
            "keyword arguments",
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
def search(run, p, where, document, query, configs=None):
    """Up to 20 matches (ranked when asked, with snippets when asked), plus how many matched.

    `configs` are the text-search configs of the query and of the text it is matched against (None
    for ILIKE): when nothing matched, each word is looked up in the seeded paragraphs, to say why.
    """
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
        if not found:
            why_nothing_matched(run, session, p, configs)
    return Rows(tuple(stmt.selected_columns.keys()), [tuple(row) for row in found])


@recipe.helper
def why_nothing_matched(run, session, p, configs):
    """Look each word of the search up in the distinct paragraphs the articles repeat, and find a
    word the text does have to suggest. Only runs that matched nothing pay for it."""
    if configs is None:  # ILIKE: each word as a substring
        words = [
            [w, w, paragraphs_with(session, Paragraph.body.icontains(w, autoescape=True))]
            for w in p.q.split()
        ]
    else:  # the words as the query's config makes lexemes of them (a stop word: none), in the text's
        query_config, text_config = configs
        parsed = func.ts_debug(cast(query_config, REGCONFIG), p.q).table_valued("alias", "token", "lexemes")
        tokens = session.execute(select(parsed.c.token, parsed.c.lexemes).where(parsed.c.alias != "blank"))
        words = [
            [token, lexemes[0], paragraphs_with(session, has_lexeme(text_config, lexemes[0]))]
            if lexemes
            else [token, None, None]
            for token, lexemes in tokens
        ]
    run.metric("searched_as", configs or "substring")
    run.metric("paragraphs", session.scalar(select(func.count()).select_from(Paragraph)))
    run.metric("words_in_paragraphs", words)
    run.metric("try_instead", suggestion(session, p.q))


@recipe.helper
def paragraphs_with(session, condition):
    return session.scalar(select(func.count()).select_from(Paragraph).where(condition))


@recipe.helper
def has_lexeme(config, lexeme):
    """to_tsvector(config, body) holds this very lexeme (quoted, so it is not normalised again)."""
    return func.to_tsvector(config, Paragraph.body).bool_op("@@")(cast(func.quote_literal(lexeme), TSQUERY))


@recipe.helper
def suggestion(session, q):
    """The commonest word of the paragraphs that starts like the search's longest word, or else the
    commonest long word; never a stop word, so every variant can find it."""
    words = func.ts_stat("SELECT to_tsvector('simple', body) FROM pydoc_paragraphs").table_valued(
        "word", "ndoc", "nentry"
    )
    longest = max((re.sub(r"\W", "", w.lower()) for w in q.split()), key=len, default="")
    pick = (
        select(words.c.word)
        .where(func.length(words.c.word) >= 6, func.length(func.to_tsvector("english", words.c.word)) > 0)
        .where(words.c.word.not_in([w.lower() for w in q.split()] or [""]))  # a word not tried yet
        .order_by(words.c.ndoc.desc(), words.c.word)
        .limit(1)
    )
    like = (
        session.scalar(pick.where(words.c.word.startswith(longest[:4], autoescape=True))) if longest else None
    )
    return like or session.scalar(pick)


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
        document, text_config = Article.search_vector, "english"  # the stored, indexed column
    else:
        document, text_config = func.to_tsvector(p.config, Article.body), p.config
    return search(run, p, document.bool_op("@@")(query), document, query, (p.config, text_config))


@recipe.variant
def mismatched_config(run, p):
    """The same search with the 'simple' config, while the index was built with 'english' (the trap)

    to_tsvector('simple', body) is another expression than the indexed to_tsvector('english', body),
    so no index can answer it, whichever one is built.
    """
    query = PARSERS[p.parser]("simple", p.q)
    document = func.to_tsvector("simple", Article.body)
    return search(run, p, document.bool_op("@@")(query), document, query, ("simple", "simple"))


@recipe.notes
def notes(result):
    lines = []
    matches = result.metrics.get("matches")
    if matches is not None:
        lines.append(f"{matches:,} of {result.params['rows']:,} articles matched.")
    if matches == 0 and "words_in_paragraphs" in result.metrics:
        lines.append(no_match_line(result))
    summary = plan_of(result)
    if summary is not None:
        lines += scan_lines(summary, result.rows.total if result.rows else 0, result.params["rows"])
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
        "Find the articles matching your search with an index doing the searching, not a scan that "
        "reads rows until enough of them match",
        checks=(
            Check("nodes", excludes="Seq Scan"),
            Check("nodes", includes="Bitmap Index Scan"),
            Check("metric:matches", at_least=1),
        ),
    ),
)
