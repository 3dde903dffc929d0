"""How a dataset is created and seeded: server-side, deterministically, recorded beside the data.

A sandbox remembers what it holds in a small `_datasets` table of its own schema: the dataset's
name and the signature (version and size) it was seeded with. The truth lives next to the data,
so a Reset, a restored backup or a dropped table can never leave the registry believing in rows
that are not there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql as psycopg_sql
from sqlalchemy import Connection, text

from recipes.datasets.models import Base

REGISTRY_DDL = "CREATE TABLE IF NOT EXISTS _datasets (name text PRIMARY KEY, signature jsonb NOT NULL)"
INDEX_NAMES = (
    # pg_index directly: the pg_indexes view joins five catalogs and formats every definition,
    # several times the work for the names alone, on every run.
    "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = to_regclass(quote_ident(current_schema()) || '.' || quote_ident({table}))"
)
"""The names of the indexes on a table of the sandbox's schema, `{table}` a quoted literal."""


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

    def check(self, conn: Connection, size: dict[str, int]) -> tuple[bool, set[str]]:
        """Whether the tables are there, seeded with this signature, and the names of the indexes
        on the main table: one round trip, the index names for `Setup.indexes` coming next.

        A person may drop `_datasets` like any table of theirs, and a query naming a table that
        is gone fails and aborts the setup's transaction. So the registry is made sure of in the
        same message, ahead of the read: `CREATE TABLE IF NOT EXISTS` and the SELECT go together
        as one simple query (bound parameters would allow one statement only), the names in it
        quoted as literals. The driver's cursor reads the second result, which SQLAlchemy would
        drop for the first, empty one. Going round SQLAlchemy, the statement is not counted by a
        run's watch; the watch's deadline still cancels it, as it cancels anything in flight.
        """
        query = psycopg_sql.SQL(
            "{ddl}; SELECT coalesce(bool_and(to_regclass(quote_ident(t)) IS NOT NULL), true), "
            "(SELECT signature FROM _datasets WHERE name = {name}), "
            "ARRAY(" + INDEX_NAMES + ") "
            "FROM unnest({tables}::text[]) AS t"
        ).format(
            ddl=psycopg_sql.SQL(REGISTRY_DDL),
            name=psycopg_sql.Literal(self.name),
            table=psycopg_sql.Literal(self.table),
            tables=psycopg_sql.Literal([m.__tablename__ for m in self.models]),
        )
        dbapi = conn.connection.dbapi_connection
        with _ahead_of_the_transaction(dbapi), dbapi.cursor() as cursor:
            cursor.execute(query.as_string(cursor.connection))
            cursor.nextset()
            tables, stored, indexes = cursor.fetchone()
        return bool(tables) and stored == self.signature(size), set(indexes)

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


@contextmanager
def _ahead_of_the_transaction(dbapi: psycopg.Connection) -> Iterator[None]:
    """Send the check on its own, before the setup's transaction has sent anything, when it is
    the setup's first statement (it always is on a warm run).

    psycopg opens a transaction with a BEGIN of its own, a round trip before the first statement,
    and a COMMIT closes it. When the dataset is current the check is all a setup sends: in
    autocommit it is one round trip instead of three, and the setup's transaction, having sent
    nothing, commits without a word. The check reads, and its `CREATE TABLE IF NOT EXISTS` of
    the registry is as good committed at once; whatever the setup writes next goes in its
    transaction as before.
    """
    if dbapi.autocommit or dbapi.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        yield  # a statement was sent already: the check joins the transaction
        return
    dbapi.autocommit = True
    try:
        yield
    finally:
        if not dbapi.broken:  # a broken one is thrown away by the pool
            dbapi.autocommit = False


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
