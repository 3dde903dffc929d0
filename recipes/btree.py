"""The shape of a B-tree index (pages, leaves, levels), measured with nothing but EXPLAIN.

A sandbox role may not read index pages: pageinspect and pgstattuple need privileges it does not
have. EXPLAIN (ANALYZE, BUFFERS) needs none, and it reports the 8 kB pages each plan node touched.
A bitmap index scan for the lowest key descends from the root to the first leaf, touching one page
per level; one for every key from the lowest on descends the same way and then reads each further
leaf once, left to right, before the table is visited at all. The difference between the two is
the leaves after the first. Whatever is neither a leaf nor the metapage is an internal page.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from recipes.plan import summarize

PAGE_BYTES = 8192
FORCE_BITMAP = text(
    "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_indexscan', 'off', true), "
    "set_config('enable_indexonlyscan', 'off', true), "
    "set_config('max_parallel_workers_per_gather', '0', true)"
)
"""Leave the planner only the bitmap scan, for the current transaction."""


@dataclass(frozen=True)
class TreeShape:
    """An index's pages, as counted by `shape`."""

    pages: int
    """Every page of the index, the metapage (page 0) included."""
    leaves: int
    """Pages on the leaf level, the ones that hold an entry per row."""
    levels: int
    """Pages a search touches from the root down to a leaf (1 when the root is the only leaf)."""

    @property
    def internal(self) -> int:
        """Pages above the leaves, the root included."""
        return self.pages - 1 - self.leaves


def shape(conn: Connection, table: str, column: str, index: str) -> TreeShape:
    """Count the pages of `index`, a B-tree on `table`(`column`), in a transaction rolled back after.

    `table`, `column` and `index` are names from the code, never from a person's input.
    """
    conn.commit()  # start clean: the rollback below must take nothing else with it
    pages = conn.scalar(text("SELECT pg_relation_size(:i)"), {"i": index}) // PAGE_BYTES
    lowest = conn.scalar(text(f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1"))
    conn.execute(FORCE_BITMAP)
    one = f"SELECT 1 FROM {table} WHERE {column} = :k"
    every = f"SELECT 1 FROM {table} WHERE {column} >= :k LIMIT 1"  # the bitmap is built whole first
    # The first scan after many inserts may read the metapage again (the session refreshes its
    # cached copy once the root has moved): the lower of two readings counts the levels alone.
    levels = min(_index_pages_read(conn, one, lowest) for _ in range(2))
    leaves = _index_pages_read(conn, every, lowest) - levels + 1
    conn.rollback()
    return TreeShape(pages=pages, leaves=max(min(leaves, pages - 1), 1), levels=levels)


def _index_pages_read(conn: Connection, sql: str, key: object) -> int:
    """Pages the plan's Bitmap Index Scan touched, found in the cache or read in."""
    plan = conn.scalar(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql), {"k": key})
    (scan,) = [n for n in summarize(plan).nodes if n.node_type == "Bitmap Index Scan"]
    return scan.shared_hit + scan.shared_read
