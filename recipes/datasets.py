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

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Connection,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


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


class Author(Base):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")


class Book(Base):
    __tablename__ = "books"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"), index=True)
    title: Mapped[str] = mapped_column(Text)
    author: Mapped[Author] = relationship(back_populates="books")
    reviews: Mapped[list[Review]] = relationship(back_populates="book", order_by="Review.id")


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"), index=True)
    stars: Mapped[int]
    book: Mapped[Book] = relationship(back_populates="reviews")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean)


REGISTRY_DDL = "CREATE TABLE IF NOT EXISTS _datasets (name text PRIMARY KEY, signature jsonb NOT NULL)"


@dataclass(frozen=True)
class Dataset:
    """Seedable tables: their models, how to fill them, and the optional indexes recipes toggle."""

    name: str
    models: tuple[type[Base], ...]
    """Parents before children: created in this order, dropped in reverse."""
    seed_sql: tuple[str, ...]
    """INSERT … SELECT generate_series(…) statements with bound size parameters."""
    version: int = 1
    """Bump when the seed changes so existing sandboxes re-seed."""
    indexes: dict[str, str] = field(default_factory=dict)
    """Optional index name → CREATE INDEX statement. Names are the only identifiers recipes pass."""

    @property
    def table(self) -> str:
        """The main table (the first model's), the one optional indexes go on."""
        return self.models[0].__tablename__

    def signature(self, size: dict[str, int]) -> dict[str, int]:
        return {"version": self.version, **size}

    def is_current(self, conn: Connection, size: dict[str, int]) -> bool:
        """Whether the tables are there, seeded with this signature (two round trips at most)."""
        registry, tables = conn.execute(
            text(
                "SELECT to_regclass('_datasets') IS NOT NULL, "
                "coalesce(bool_and(to_regclass(quote_ident(t)) IS NOT NULL), true) "
                "FROM unnest(CAST(:tables AS text[])) AS t"
            ),
            {"tables": [m.__tablename__ for m in self.models]},
        ).one()
        if not registry:
            conn.execute(text(REGISTRY_DDL))
            return False
        if not tables:
            return False
        stored = conn.execute(
            text("SELECT signature FROM _datasets WHERE name = :n"), {"n": self.name}
        ).scalar()
        return stored == self.signature(size)

    def build(self, conn: Connection, size: dict[str, int], *, analyze: bool = True) -> None:
        """Drop, create and seed the tables, record the signature; ANALYZE them unless told not to.

        The seed runs with the tables' keys, unique constraints, foreign keys and indexes taken
        off and put back afterwards, as Postgres' advice on populating a database says: building
        an index over the loaded rows in one pass costs far less than maintaining it (and writing
        WAL for it) row by row, and a foreign key is checked with one join instead of a trigger
        call per row. Everything happens in the caller's transaction; the tables are new, so no
        one else sees them without their constraints.
        """
        for model in reversed(self.models):
            conn.execute(text(f'DROP TABLE IF EXISTS "{model.__tablename__}" CASCADE'))
        for model in self.models:
            model.__table__.create(conn)
        tables = [model.__tablename__ for model in self.models]
        if self.seed_sql:
            restore = _take_off_constraints(conn, tables)
            for statement in self.seed_sql:
                conn.execute(text(statement), size)
            for statement in restore:
                conn.execute(text(statement))
        for table in tables:
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence(:t, 'id'), "
                    f'GREATEST((SELECT max(id) FROM "{table}"), 1))'
                ),
                {"t": table},
            )
        if analyze:
            conn.execute(text("ANALYZE " + ", ".join(f'"{t}"' for t in tables)))
        conn.execute(
            text(
                "INSERT INTO _datasets (name, signature) VALUES (:n, CAST(:s AS jsonb)) "
                "ON CONFLICT (name) DO UPDATE SET signature = EXCLUDED.signature"
            ),
            {"n": self.name, "s": json.dumps(self.signature(size))},
        )


_TABLES = "(SELECT to_regclass(quote_ident(t)) FROM unnest(CAST(:tables AS text[])) AS t)"
_CONSTRAINTS = f"""
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname),
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, pg_get_constraintdef(oid)),
       contype = 'f'
FROM pg_constraint
WHERE conrelid IN {_TABLES} AND contype IN ('p', 'u', 'f')
ORDER BY contype = 'f' DESC, conrelid, conname
"""
_INDEXES = f"""
SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
FROM pg_index AS i
WHERE i.indrelid IN {_TABLES}
  AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid AND c.contype <> 'f')
ORDER BY i.indexrelid
"""


def _take_off_constraints(conn: Connection, tables: list[str]) -> list[str]:
    """Drop the keys, unique constraints, foreign keys and indexes of `tables`; return the
    statements that put them back (keys and indexes first, foreign keys last)."""
    constraints = conn.execute(text(_CONSTRAINTS), {"tables": tables}).all()
    indexes = conn.execute(text(_INDEXES), {"tables": tables}).all()
    for drop, _, _ in constraints:  # foreign keys first: they depend on the keys they reference
        conn.execute(text(drop))
    for drop, _ in indexes:
        conn.execute(text(drop))
    keys = [add for _, add, foreign in constraints if not foreign]
    foreign_keys = [add for _, add, foreign in constraints if foreign]
    return keys + [create for _, create in indexes] + foreign_keys


# Two rows share each created_at (so the tie-breaker on id matters), timestamps rise with id,
# one document in ten is soft-deleted, and owners are spread by a multiplicative hash.
DOCUMENTS = Dataset(
    name="documents",
    models=(Document,),
    seed_sql=(
        """
        INSERT INTO documents (id, owner_id, title, created_at, updated_at, deleted_at)
        OVERRIDING SYSTEM VALUE
        SELECT i,
               1 + (i::bigint * 7919) % :owners,
               'Document ' || i,
               ts, ts,
               CASE WHEN i % 10 = 0 THEN ts + interval '1 day' END
        FROM generate_series(1, :rows) AS i,
             LATERAL (SELECT timestamptz '2024-01-01 00:00:00+00'
                             + ((i - 1) / 2) * interval '37 seconds' AS ts) AS t
    """,
    ),
    indexes={
        "ix_documents_created_at": "CREATE INDEX ix_documents_created_at ON documents (created_at)",
        "ix_documents_created_id": (
            "CREATE INDEX ix_documents_created_id ON documents (created_at DESC, id DESC)"
        ),
        # The indexes recipe's choices: equality column first, the other way round, and partial.
        "ix_documents_owner_created": (
            "CREATE INDEX ix_documents_owner_created ON documents (owner_id, created_at DESC)"
        ),
        "ix_documents_created_owner": (
            "CREATE INDEX ix_documents_created_owner ON documents (created_at DESC, owner_id)"
        ),
        "ix_documents_live_created": (
            "CREATE INDEX ix_documents_live_created ON documents (created_at DESC) WHERE deleted_at IS NULL"
        ),
    },
)

# Every author has the same number of books and every book REVIEWS_PER_BOOK reviews, so the
# expected counts are easy to check against what the ORM loaded.
REVIEWS_PER_BOOK = 3
LIBRARY = Dataset(
    name="library",
    models=(Author, Book, Review),
    seed_sql=(
        """INSERT INTO authors (id, name) OVERRIDING SYSTEM VALUE
           SELECT a, 'Author ' || a FROM generate_series(1, :authors) AS a""",
        """INSERT INTO books (id, author_id, title) OVERRIDING SYSTEM VALUE
           SELECT (a - 1) * :books_per_author + b, a, 'Book ' || a || '.' || b
           FROM generate_series(1, :authors) AS a, generate_series(1, :books_per_author) AS b""",
        f"""INSERT INTO reviews (book_id, stars)
           SELECT id, 1 + (id * 31 + r) % 5 FROM books, generate_series(1, {REVIEWS_PER_BOOK}) AS r""",
    ),
)

# `match` is the percentage of users whose role is 'admin', spread evenly through the table.
USERS = Dataset(
    name="users",
    models=(User,),
    seed_sql=(
        """INSERT INTO users (id, email, name, role, active) OVERRIDING SYSTEM VALUE
           SELECT i, 'user' || i || '@example.com', 'User ' || i,
                  CASE WHEN (i::bigint * 7919) % 10000 < :match * 100 THEN 'admin' ELSE 'member' END,
                  i % 3 <> 0
           FROM generate_series(1, :rows) AS i""",
    ),
    # email already has the unique constraint's plain B-tree (users_email_key).
    indexes={"ix_users_email_lower": "CREATE INDEX ix_users_email_lower ON users (lower(email))"},
)


# --- Writing ----------------------------------------------------------------------------------
class Account(Base):
    """A sign-up that can be soft-deleted: a timestamp in deleted_at instead of a DELETE."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("email", name="accounts_email_key"),
        Index("ix_accounts_live_email", "email", postgresql_where=text("deleted_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# One account in ten is soft-deleted (account10@, account20@, …), the others are live.
ACCOUNTS = Dataset(
    name="accounts",
    models=(Account,),
    seed_sql=(
        """INSERT INTO accounts (id, email, name, deleted_at) OVERRIDING SYSTEM VALUE
           SELECT i, 'account' || i || '@example.com', 'Account ' || i,
                  CASE WHEN i % 10 = 0 THEN timestamptz '2024-06-01 00:00:00+00' + i * interval '1 minute' END
           FROM generate_series(1, :rows) AS i""",
    ),
)


class StockItem(Base):
    __tablename__ = "inventory"
    __table_args__ = (CheckConstraint("on_hand >= 0", name="inventory_on_hand_not_negative"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sku: Mapped[str] = mapped_column(Text, unique=True)
    on_hand: Mapped[int]


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (CheckConstraint("total >= 0", name="orders_total_not_negative"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    customer: Mapped[str] = mapped_column(Text)
    total: Mapped[int]
    """In cents."""
    lines: Mapped[list[LineItem]] = relationship(back_populates="order", order_by="LineItem.id")


class LineItem(Base):
    __tablename__ = "line_items"
    __table_args__ = (CheckConstraint("qty > 0", name="line_items_qty_positive"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    sku: Mapped[str] = mapped_column(ForeignKey("inventory.sku"))
    qty: Mapped[int]
    order: Mapped[Order] = relationship(back_populates="lines")


# Three products in stock and three complete orders, each with one line already taken from stock.
SHOP = Dataset(
    name="shop",
    models=(StockItem, Order, LineItem),
    seed_sql=(
        """INSERT INTO inventory (id, sku, on_hand) OVERRIDING SYSTEM VALUE
           SELECT i, 'SKU-' || i, :stock FROM generate_series(1, 3) AS i""",
        """INSERT INTO orders (id, customer, total) OVERRIDING SYSTEM VALUE
           SELECT i, 'customer ' || i, 1500 * i FROM generate_series(1, 3) AS i""",
        """INSERT INTO line_items (id, order_id, sku, qty) OVERRIDING SYSTEM VALUE
           SELECT i, i, 'SKU-' || i, i FROM generate_series(1, 3) AS i""",
        "UPDATE inventory SET on_hand = on_hand - i.qty FROM line_items AS i WHERE i.sku = inventory.sku",
    ),
)


def stamped_in_python() -> str:
    """A Python-side column default: SQLAlchemy must call it, Postgres never sees the function."""
    return "python default"


class BulkItem(Base):
    __tablename__ = "bulk_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    value: Mapped[int]
    source: Mapped[str | None] = mapped_column(Text, default=stamped_in_python)


# Created empty: the bulk-insert recipe empties it before every run and fills it itself.
BULK_ITEMS = Dataset(name="bulk_items", models=(BulkItem,), seed_sql=())
