"""Figures derived once from a run's statements, handed to templates as their context."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from recipes.results import Statement


@dataclass
class StatementGroup:
    """Consecutive statements of one shape: the first shown in full, the rest by parameters."""

    first: Statement
    number: int
    """Position of the first statement in the list (1-based)."""
    rest: list[Statement] = field(default_factory=list)
    duplicates: int = 0
    """Statements of this group sent with exactly the same SQL and parameters as an earlier one."""

    @property
    def size(self) -> int:
        return 1 + len(self.rest)

    @property
    def duration_ms(self) -> float:
        return sum(s.duration_ms or 0.0 for s in (self.first, *self.rest))


@dataclass
class StatementStats:
    groups: list[StatementGroup]
    queries: int
    shapes: int
    """Distinct shapes among the queries."""
    most_repeated: int
    """Queries sharing the most common shape."""
    duplicates: int
    explains: list[Statement]
    """The runner's EXPLAINs of the main statement, sent after everything the variant sent."""
    omitted: int = 0
    """Queries the run sent that the list leaves out (see `RunResult.trimmed`)."""

    @property
    def headline(self) -> str:
        total = self.queries + self.omitted
        text = f"{total:,} quer{'y' if total == 1 else 'ies'}"
        if self.omitted:
            text += f" ({self.omitted:,} not listed)"
        if self.most_repeated > 1:
            text += f", {self.most_repeated} of them the same shape"
        if self.duplicates:
            text += f", {self.duplicates} exact duplicate{'s' if self.duplicates != 1 else ''}"
        return text


def statement_stats(statements: list[Statement], omitted: int = 0) -> StatementStats:
    queries = [s for s in statements if s.kind in ("query", "copy")]
    shapes = Counter(s.shape for s in queries)
    seen: set[tuple[str, str]] = set()
    groups: list[StatementGroup] = []
    duplicates = 0
    # The runner's EXPLAINs of the main statement come after everything the variant sent; an
    # EXPLAIN the variant sent itself (to count an index's pages) keeps its place in the list.
    ran = max((i for i, s in enumerate(statements) if s.kind != "explain"), default=-1) + 1
    for number, s in enumerate(statements[:ran], start=1):
        key = (s.sql, repr(s.parameters))
        duplicate = s.kind == "query" and key in seen
        seen.add(key)
        duplicates += duplicate
        last = groups[-1] if groups else None
        if last and s.kind == "query" and last.first.kind == "query" and last.first.shape == s.shape:
            last.rest.append(s)
            last.duplicates += duplicate
        else:
            groups.append(StatementGroup(first=s, number=number, duplicates=int(duplicate)))
    return StatementStats(
        groups=groups,
        queries=len(queries),
        shapes=len(shapes),
        most_repeated=max(shapes.values(), default=0),
        duplicates=duplicates,
        explains=statements[ran:],
        omitted=omitted,
    )
