"""Tables the recipes share, and how to seed them server-side and deterministically.

A sandbox remembers what it holds in a small `_datasets` table of its own schema: the dataset's
name and the signature (version and size) it was seeded with. The truth lives next to the data,
so a Reset, a restored backup or a dropped table can never leave the registry believing in rows
that are not there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import BigInteger, Connection, DateTime, Identity, Text, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Models of sandbox tables. No schema is named: the role's search_path is its schema."""


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    owner_id: Mapped[int]
    title: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


REGISTRY_DDL = "CREATE TABLE IF NOT EXISTS _datasets (name text PRIMARY KEY, signature jsonb NOT NULL)"


@dataclass(frozen=True)
class Dataset:
    """A seedable table: its model, how to fill it, and the optional indexes recipes toggle."""

    name: str
    model: type[Base]
    seed_sql: str
    """INSERT … SELECT generate_series(…) with bound size parameters."""
    version: int = 1
    """Bump when the seed changes so existing sandboxes re-seed."""
    indexes: dict[str, str] = field(default_factory=dict)
    """Optional index name → CREATE INDEX statement. Names are the only identifiers recipes pass."""

    def signature(self, size: dict[str, int]) -> dict[str, int]:
        return {"version": self.version, **size}

    def is_current(self, conn: Connection, size: dict[str, int]) -> bool:
        conn.execute(text(REGISTRY_DDL))
        stored = conn.execute(
            text("SELECT signature FROM _datasets WHERE name = :n"), {"n": self.name}
        ).scalar()
        exists = conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": self.name}).scalar()
        return bool(exists) and stored == self.signature(size)

    def build(self, conn: Connection, size: dict[str, int]) -> None:
        """Drop, create, seed and ANALYZE the table; record the signature."""
        self.model.__table__.drop(conn, checkfirst=True)
        self.model.__table__.create(conn)
        conn.execute(text(self.seed_sql), size)
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence(:t, 'id'), GREATEST((SELECT max(id) FROM "
                f'"{self.name}"), 1))'
            ),
            {"t": self.name},
        )
        conn.execute(text(f'ANALYZE "{self.name}"'))
        conn.execute(
            text(
                "INSERT INTO _datasets (name, signature) VALUES (:n, CAST(:s AS jsonb)) "
                "ON CONFLICT (name) DO UPDATE SET signature = EXCLUDED.signature"
            ),
            {"n": self.name, "s": json.dumps(self.signature(size))},
        )


# Two rows share each created_at (so the tie-breaker on id matters), timestamps rise with id,
# one document in ten is soft-deleted, and owners are spread by a multiplicative hash.
DOCUMENTS = Dataset(
    name="documents",
    model=Document,
    seed_sql="""
        INSERT INTO documents (id, owner_id, title, created_at, updated_at, deleted_at)
        OVERRIDING SYSTEM VALUE
        SELECT i,
               1 + (i * 7919) % :owners,
               'Document ' || i,
               ts, ts,
               CASE WHEN i % 10 = 0 THEN ts + interval '1 day' END
        FROM generate_series(1, :rows) AS i,
             LATERAL (SELECT timestamptz '2024-01-01 00:00:00+00'
                             + ((i - 1) / 2) * interval '37 seconds' AS ts) AS t
    """,
    indexes={
        "ix_documents_created_at": "CREATE INDEX ix_documents_created_at ON documents (created_at)",
        "ix_documents_created_id": (
            "CREATE INDEX ix_documents_created_id ON documents (created_at DESC, id DESC)"
        ),
    },
)

ALL = (DOCUMENTS,)
