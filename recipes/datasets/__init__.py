"""Tables the recipes share: their models (`models`), how a dataset is seeded (`seeding`), and the
datasets themselves, defined here.

`from recipes.datasets import DOCUMENTS, Document` reads everything from this one place. Tables a
single recipe uses are declared in its module, or, when they would crowd it, in a module of their
own here (`articles`: the text full-text search looks through), imported by that recipe alone.
"""

from __future__ import annotations

from recipes.datasets.models import (
    Account,
    Author,
    Base,
    Book,
    BulkItem,
    Document,
    LineItem,
    Order,
    Review,
    StockItem,
    User,
    stamped_in_python,
)
from recipes.datasets.seeding import REGISTRY_DDL, Dataset

__all__ = [
    "ACCOUNTS",
    "BULK_ITEMS",
    "DOCUMENTS",
    "LIBRARY",
    "REGISTRY_DDL",
    "REVIEWS_PER_BOOK",
    "SHOP",
    "USERS",
    "Account",
    "Author",
    "Base",
    "Book",
    "BulkItem",
    "Dataset",
    "Document",
    "LineItem",
    "Order",
    "Review",
    "StockItem",
    "User",
    "stamped_in_python",
]

# Three rows share each created_at, as if written in one transaction (so the tie-breaker on id
# matters, and a page of 20 ends inside a tie), timestamps rise with id, one document in ten is
# soft-deleted, and owners are spread by a multiplicative hash.
DOCUMENTS = Dataset(
    name="documents",
    models=(Document,),
    version=2,
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
                             + ((i - 1) / 3) * interval '37 seconds' AS ts) AS t
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
    indexes={
        "ix_users_email_lower": "CREATE INDEX ix_users_email_lower ON users (lower(email))",
        # The columns exists-count looks in, indexed on request.
        "ix_users_role": "CREATE INDEX ix_users_role ON users (role)",
        "ix_users_name": "CREATE INDEX ix_users_name ON users (name)",
    },
)


# --- Writing ----------------------------------------------------------------------------------
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


# Created empty: the bulk-insert recipe empties it before every run and fills it itself.
BULK_ITEMS = Dataset(name="bulk_items", models=(BulkItem,), seed_sql=())
