"""Helpers that turn a run's measured figures into "what to notice" sentences."""

from __future__ import annotations

from recipes.plan import PlanSummary
from recipes.results import RunResult


def plan_of(result: RunResult) -> PlanSummary | None:
    return result.plan.summary if result.plan is not None else None


def scan_phrase(summary: PlanSummary) -> str:
    """'Index Scan using ix on documents' for the scan that read the most rows."""
    scans = summary.scans
    if not scans:
        return "no table scan"
    return max(scans, key=lambda n: n.rows_read).label


def rows_read_line(result: RunResult) -> str | None:
    """How much Postgres read to produce what the variant got back."""
    summary = plan_of(result)
    if summary is None:
        return None
    returned = result.rows.total if result.rows else 0
    read = summary.rows_read
    line = f"Postgres read {read:,} rows ({scan_phrase(summary)}) to return {returned:,}"
    if read > returned:
        line += f": {read - returned:,} rows read and thrown away"
    sorts = [n for n in summary.nodes if "Sort" in n.node_type]
    if sorts:
        line += f"; the plan also sorts ({sorts[0].node_type})"
    return line + f". Execution took {summary.execution_ms:.2f} ms."


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 error', '0 errors', '3 errors'; `nouns` for a plural not made with -s ('2 queries')."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"
