"""A figure of the benchmark, the statistics it is summed up with, and the table they make."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def spread(values: list[float], unit: str = "ms") -> str:
    """Median [p25–p75] of repeated measurements."""
    return (
        f"{statistics.median(values):.2f} {unit} [{quantile(values, 0.25):.2f}–{quantile(values, 0.75):.2f}]"
    )


@dataclass
class Figure:
    """One row of the table: what the playground measured beside its reference."""

    name: str
    playground: str
    reference: str
    result: str
    target: str
    met: bool
    details: list[str] = field(default_factory=list)


def print_table(figures: list[Figure]) -> None:
    header = ("figure", "playground: median [p25–p75]", "reference: median [p25–p75]", "result", "target", "")
    rows = [header] + [
        (f.name, f.playground, f.reference, f.result, f.target, "met" if f.met else "MISSED") for f in figures
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print()
    for i, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for f in figures:
        for line in f.details:
            print(f"  {f.name}: {line}")
