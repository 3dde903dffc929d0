"""The sandbox tables the recipes share, as SQLAlchemy models (seeded by `recipes.datasets`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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


def stamped_in_python() -> str:
    """A Python-side column default: SQLAlchemy must call it, Postgres never sees the function."""
    return "python default"


class BulkItem(Base):
    __tablename__ = "bulk_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    value: Mapped[int]
    source: Mapped[str | None] = mapped_column(Text, default=stamped_in_python)
