"""Figures of several runs side by side, and the bar geometry for a server-rendered SVG chart."""

from __future__ import annotations

from dataclasses import dataclass

from recipes.results import RunResult

BAR_MAX = 100.0
"""Width in percent of the longest bar."""


@dataclass(frozen=True)
class ComparisonRow:
    variant: str
    ok: bool
    error: str | None
    queries: int
    rows_fetched: int
    elapsed_ms: float
    db_ms: float
    metrics: dict
    queries_bar: float
    time_bar: float


def comparison_rows(results: list[RunResult]) -> list[ComparisonRow]:
    """One row per run with bar lengths scaled to the largest value of each figure."""
    most_queries = max((r.query_count for r in results), default=0) or 1
    slowest = max((r.elapsed_ms for r in results), default=0.0) or 1.0
    rows = []
    for r in results:
        fetched = sum(s.rowcount or 0 for s in r.statements if s.kind == "query")
        rows.append(
            ComparisonRow(
                variant=r.variant,
                ok=r.ok,
                error=r.error,
                queries=r.query_count,
                rows_fetched=fetched,
                elapsed_ms=r.elapsed_ms,
                db_ms=r.db_ms,
                metrics=r.metrics,
                queries_bar=round(BAR_MAX * r.query_count / most_queries, 1),
                time_bar=round(BAR_MAX * r.elapsed_ms / slowest, 1),
            )
        )
    return rows
