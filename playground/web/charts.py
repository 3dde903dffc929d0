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
    rows_read: int | None
    """Rows the main query's plan read; None for a run without a plan."""
    buffers: int | None
    """Pages the main query's plan touched (hit + read)."""
    elapsed_ms: float
    db_ms: float
    metrics: dict
    work_bar: float
    """Rows read by the main query (rows fetched when no variant has a plan), scaled to the largest."""
    time_bar: float


def comparison_rows(results: list[RunResult]) -> list[ComparisonRow]:
    """One row per run with bar lengths scaled to the largest value of each figure.

    The bars show work and time rather than query counts: variants of one recipe often send
    the same number of queries (keyset and offset both send one) while reading very different
    numbers of rows.
    """
    figures = [r.figures for r in results]
    planned = any(f.rows_read is not None for f in figures)
    work = [(f.rows_read or 0) if planned else f.rows_fetched for f in figures]
    most_work = max(work, default=0) or 1
    slowest = max((r.elapsed_ms for r in results), default=0.0) or 1.0
    return [
        ComparisonRow(
            variant=r.variant,
            ok=r.ok,
            error=r.error,
            queries=f.queries,
            rows_fetched=f.rows_fetched,
            rows_read=f.rows_read,
            buffers=(f.buffers_hit or 0) + (f.buffers_read or 0) if f.plan else None,
            elapsed_ms=r.elapsed_ms,
            db_ms=r.db_ms,
            metrics=r.metrics,
            work_bar=round(BAR_MAX * w / most_work, 1),
            time_bar=round(BAR_MAX * r.elapsed_ms / slowest, 1),
        )
        for r, f, w in zip(results, figures, work, strict=True)
    ]


def work_label(rows: list[ComparisonRow]) -> str:
    """What the blue bar measures for these rows."""
    return "rows read by the main query" if any(r.rows_read is not None for r in rows) else "rows fetched"


@dataclass(frozen=True)
class Lane:
    """One worker of a timeline, in percent of the chart's width."""

    label: str
    wait_x: float
    wait_w: float
    hold_x: float
    hold_w: float
    gave_up: bool
    tooltip: str


def timeline_lanes(timeline: list[list[float | None]]) -> list[Lane]:
    """[worker, asked, got, done] in ms → lanes: waiting from asked to got, holding from got to done."""
    end = max((row[3] or 0.0 for row in timeline), default=0.0) or 1.0

    def pct(ms: float) -> float:
        return round(100 * ms / end, 2)

    lanes = []
    for worker, asked, got, done in timeline:
        until = got if got is not None else done
        lanes.append(
            Lane(
                label=f"worker {worker}",
                wait_x=pct(asked),
                wait_w=max(pct(until - asked), 0.3),
                hold_x=pct(until),
                hold_w=pct(done - got) if got is not None else 0.0,
                gave_up=got is None,
                tooltip=f"worker {worker}: waited {until - asked:.1f} ms"
                + (f", held {done - got:.1f} ms" if got is not None else ", gave up"),
            )
        )
    return lanes


@dataclass(frozen=True)
class CallBar:
    """One call of a series sent on one connection, in percent of the slowest call."""

    label: str
    width: float
    kind: str
    """What the call ran: "unprepared", "custom" or "generic" (a CSS class too)."""
    tooltip: str


def call_bars(per_call: list[list]) -> list[CallBar]:
    """[call, ms, plan] rows → one bar per call, the slowest call filling the width."""
    slowest = max((row[1] for row in per_call), default=0.0) or 1.0
    return [
        CallBar(
            label=f"call {call}",
            width=max(round(100 * ms / slowest, 2), 0.3),
            kind=plan,
            tooltip=f"call {call}: {ms:.2f} ms, {plan}",
        )
        for call, ms, plan in per_call
    ]


PALETTE = ("#2458a6", "#e8871e", "#1c7c3a", "#b3261e", "#7b3fa0", "#0f8b8d", "#6b6b6b", "#c2185b")
WIDTH, HEIGHT = 640.0, 300.0
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64.0, 16.0, 12.0, 40.0


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: list[tuple[float, float]]
    """(x, y) in data units, sorted by x."""
    path: str
    """SVG polyline points in chart units."""
    dots: list[tuple[float, float, str]]
    """(cx, cy, tooltip) per point."""


@dataclass(frozen=True)
class LineChart:
    series: list[Series]
    x_label: str
    y_label: str
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    width: float = WIDTH
    height: float = HEIGHT
    left: float = PAD_LEFT
    bottom: float = HEIGHT - PAD_BOTTOM
    right: float = WIDTH - PAD_RIGHT
    top: float = PAD_TOP


def line_chart(data: dict[str, list[tuple[float, float]]], *, x_label: str, y_label: str) -> LineChart:
    """Scale series of (x, y) into an SVG box: x from the smallest to the largest x, y from 0."""
    xs = [x for pts in data.values() for x, _ in pts] or [0.0, 1.0]
    ys = [y for pts in data.values() for _, y in pts] or [1.0]
    x_min, x_max = min(xs), max(xs)
    y_max = max(ys) or 1.0
    span_x = (x_max - x_min) or 1.0
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def sx(x: float) -> float:
        return round(PAD_LEFT + (x - x_min) / span_x * plot_w, 1)

    def sy(y: float) -> float:
        return round(PAD_TOP + plot_h - y / y_max * plot_h, 1)

    series = []
    for i, (label, pts) in enumerate(data.items()):
        pts = sorted(pts)
        series.append(
            Series(
                label=label,
                color=PALETTE[i % len(PALETTE)],
                points=pts,
                path=" ".join(f"{sx(x)},{sy(y)}" for x, y in pts),
                dots=[(sx(x), sy(y), f"{label}: {_fmt(x)} → {_fmt(y)}") for x, y in pts],
            )
        )
    x_ticks = [(sx(x_min + span_x * k / 4), _fmt(x_min + span_x * k / 4)) for k in range(5)]
    y_ticks = [(sy(y_max * k / 4), _fmt(y_max * k / 4)) for k in range(5)]
    return LineChart(series=series, x_label=x_label, y_label=y_label, x_ticks=x_ticks, y_ticks=y_ticks)


def _fmt(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"
