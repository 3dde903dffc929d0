"""The articles the full-text search recipe looks through: real English, the prose paragraphs of
the Python reference documentation that ship with the standard library (`pydoc_data.topics`).

The distinct paragraphs, about 700, are sent once; the articles repeat them in the same order, in
SQL, up to the number asked for, so a search finds every copy of a matching paragraph. Only that
recipe uses these tables; they live here to keep its module about the searching.
"""

from __future__ import annotations

import re
from pydoc_data.topics import topics

from sqlalchemy import BigInteger, Computed, Identity, Text, insert, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from recipes.datasets.models import Base
from recipes.datasets.seeding import Dataset


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
    """The distinct paragraphs, sent once in one executemany; articles are built from them in SQL.

    The ids are given, 1 … n: the articles' seed joins on them, and an identity's next value after
    the table is (re)created is not promised to be 1.
    """

    def build(self, conn, size, *, analyze=True):
        super().build(conn, size, analyze=False)
        conn.execute(insert(Paragraph), [{"id": i, **row} for i, row in enumerate(paragraphs(), start=1)])
        if analyze:
            conn.execute(text("ANALYZE pydoc_paragraphs"))


PARAGRAPHS = ParagraphSource(name="pydoc_paragraphs", models=(Paragraph,), seed_sql=(), version=2)
ARTICLES = Dataset(
    name="articles",
    models=(Article,),
    version=2,
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
