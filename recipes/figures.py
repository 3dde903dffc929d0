"""The headline figures of a run, derived once from its statements and its plan.

Two scopes are kept apart on purpose. Run-wide figures (statements sent, rows fetched, database
time) cover everything the variant did; plan figures (rows read, buffers) cover the one statement
the recipe is about. Lazy loading reads 50 rows in its main query and fetches hundreds more in the
fifty that follow it: shown side by side, neither hides the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recipes.plan import PlanSummary
    from recipes.results import RunResult, Statement

DEFINITIONS = {
    "queries": "Statements the variant sent to Postgres (transaction markers and EXPLAIN not counted).",
    "wall": "Time from the variant's first line to its last, as a user of the code would wait.",
    "database": "The variant's statement times added up, each measured around the driver call.",
    "fetched": "Rows that came back over the wire, over every reading statement of the run.",
    "read": "Rows the main query's table and index scans produced or filtered away (from its plan).",
    "buffers": "8 kB pages the main query touched: found in Postgres' cache (hit) or read in.",
    "returned": "Rows the variant handed back to be shown.",
}


@dataclass(frozen=True)
class Figures:
    """What the headline of a result shows, each figure defined once in `DEFINITIONS`."""

    queries: int
    wall_ms: float
    db_ms: float
    rows_fetched: int
    """Sum of the row counts of every query and COPY of the run."""
    rows_returned: int | None
    plan: PlanSummary | None
    """The main query's plan, read once; None when the run had none."""

    @property
    def rows_read(self) -> int | None:
        return self.plan.rows_read if self.plan else None

    @property
    def buffers_hit(self) -> int | None:
        return self.plan.shared_hit if self.plan else None

    @property
    def buffers_read(self) -> int | None:
        return self.plan.shared_read if self.plan else None

    @property
    def db_exceeds_wall(self) -> bool:
        return self.db_ms > self.wall_ms

    @property
    def db_vs_wall(self) -> str | None:
        """Why database time can be larger than wall time, when it is."""
        if not self.db_exceeds_wall:
            return None
        return (
            f"Database time ({self.db_ms:,.1f} ms) is above wall time ({self.wall_ms:,.1f} ms): it adds up "
            "statements that ran at the same time on several connections, so time spent in parallel "
            "counts once per connection."
        )


_READS = re.compile(r"^\s*(SELECT|WITH|VALUES|TABLE|SHOW)\b|\bRETURNING\b", re.IGNORECASE)


def _returns_rows(sql: str) -> bool:
    """A statement whose row count is rows sent back, not rows written (an INSERT's count)."""
    return bool(_READS.search(sql))


def rows_fetched(statements: list[Statement]) -> int:
    """Rows that came back over the wire, over the queries and COPYs among `statements`."""
    sent = [s for s in statements if s.kind in ("query", "copy")]
    return sum(s.rowcount for s in sent if _returns_rows(s.sql) and (s.rowcount or 0) > 0)


def figures_of(result: RunResult) -> Figures:
    plan = result.plan.summary if result.plan is not None else None
    return Figures(
        queries=result.query_count,
        wall_ms=result.elapsed_ms,
        db_ms=result.db_ms,
        rows_fetched=rows_fetched(result.statements) + result.fetched_omitted,
        rows_returned=result.rows.total if result.rows else None,
        plan=plan,
    )
