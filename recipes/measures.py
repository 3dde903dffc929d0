"""Named values read from a finished run: what questions ask about and challenges check.

`FIGURES` holds the run-wide and plan figures by name; `metric:<name>` reads one of a recipe's own
metrics. A name is what a track file can write, so a team states a question or a challenge without
Python. `fill` and `shown` put parameters into a sentence and a value into words.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recipes.plan import PlanSummary
from recipes.results import RunResult

Value = Any
"""What a figure reads: a number, "yes"/"no", a plan node type, or a set of node types."""


@dataclass(frozen=True)
class Figure:
    """A value read from a finished run, with the words a check result uses for it."""

    name: str
    label: str
    """How a sentence names it: "queries", "rows read by the main query"."""
    read: Callable[[RunResult], Value]
    """The value in one run; None when the run has none (no plan, no such metric)."""


def _plan(r: RunResult) -> PlanSummary | None:
    return r.plan.summary if r.plan is not None else None


def _on_plan(read: Callable[[PlanSummary], Value]) -> Callable[[RunResult], Value]:
    return lambda r: read(s) if (s := _plan(r)) is not None else None


def _types(summary: PlanSummary) -> list[str]:
    return [n.node_type for n in summary.nodes]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _errors(r: RunResult) -> int:
    """The variant's own error, if it ended in one, plus those its workers reported."""
    workers = r.metrics.get("errors", 0)
    return (0 if r.ok else 1) + (workers if isinstance(workers, int) else 0)


FIGURES: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure("queries", "queries", lambda r: r.query_count),
        Figure("rows_fetched", "rows fetched", lambda r: r.figures.rows_fetched),
        Figure("rows_returned", "rows returned", lambda r: r.rows.total if r.rows else 0),
        Figure("rows_read", "rows read by the main query", _on_plan(lambda s: s.rows_read)),
        Figure(
            "buffers", "buffers touched by the main query", _on_plan(lambda s: s.shared_hit + s.shared_read)
        ),
        Figure("errors", "errors", _errors),
        Figure("failed", "the run failed", lambda r: _yes(not r.ok)),
        Figure("elapsed_ms", "wall time (ms)", lambda r: r.elapsed_ms),
        Figure("db_ms", "database time (ms)", lambda r: r.db_ms),
        Figure("nodes", "plan nodes", _on_plan(lambda s: set(_types(s)))),
        Figure(
            "seq_scans", "Seq Scan nodes", _on_plan(lambda s: sum("Seq Scan" in n.node_type for n in s.nodes))
        ),
        Figure("index_used", "an index used", _on_plan(lambda s: _yes(any(n.index for n in s.nodes)))),
        Figure(
            "sorts",
            "a Sort in the plan",
            _on_plan(lambda s: _yes(any("Sort" in n.node_type for n in s.nodes))),
        ),
        Figure("same_rows", "same rows as the reference", lambda r: r.metrics.get("same_rows")),
        Figure(
            "key_scan",
            "the scan that read the most rows",
            _on_plan(lambda s: s.key_scan.node_type if s.key_scan else "no scan"),
        ),
    )
}
SCAN_CHOICES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")
"""The answers a "which scan reads the most rows?" question offers."""


def figure(name: str) -> Figure:
    """The figure called `name`: one of `FIGURES`, or `metric:<name>` for a recipe's own metric."""
    if name.startswith("metric:"):
        key = name.removeprefix("metric:")
        return Figure(name, key.replace("_", " "), lambda r: r.metrics.get(key))
    try:
        return FIGURES[name]
    except KeyError:
        raise ValueError(f"unknown figure {name!r}: one of {', '.join(FIGURES)} or metric:<name>") from None


class _Params(dict):
    """Format-map that leaves unknown placeholders as they are."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class _Lenient(string.Formatter):
    """A value its format spec does not fit (text where `{rows:,}` expects a number) is shown as is."""

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


def fill(text: str, params: Mapping[str, Any]) -> str:
    """`text` with `{name}` (or `{name:,}`) replaced by the parameter's value."""
    try:
        return _Lenient().vformat(text, (), _Params(params))
    except (ValueError, IndexError):  # unbalanced braces: show the text as written
        return text


def shown(value: Value) -> str:
    if isinstance(value, bool):
        return _yes(value)
    if isinstance(value, float):
        return f"{value:,.2f}" if not value.is_integer() else f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, set | frozenset):
        return ", ".join(sorted(value)) or "none"
    return "none" if value is None else str(value)
