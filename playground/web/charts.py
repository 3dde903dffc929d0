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
PAD_TOP, PAD_RIGHT = 12.0, 16.0
TICK_PX, LABEL_PX = 11.0, 12.0
"""Font sizes of tick labels and axis titles (site.css: svg.lines .tick, .axis-label)."""
TICK_GAP = 6.0
"""Between an axis and its tick labels."""
TITLE_BAND = 18.0
"""Room for an axis title: the y title, turned on its side, left of the y tick labels; the x title
below the x tick labels."""


def text_width(text: str, size: float) -> float:
    """An upper bound of `text`'s width in px in the site's sans-serif at `size` px.

    The server cannot measure text, so it bounds it: digits and most letters are narrower than
    0.62 em in common sans-serif fonts, and separators narrower than 0.35 em. The browser test
    checks the bound against the widths a real browser draws.
    """
    narrow = sum(text.count(c) for c in ",.:;' ")
    return round(size * (0.62 * (len(text) - narrow) + 0.35 * narrow), 1)


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
    """A chart drawn in a `width` × `height` box; the plot area's edges leave room for every label."""

    series: list[Series]
    x_label: str
    """Title of the x axis: the swept parameter."""
    y_label: str
    """Title of the y axis, with its unit."""
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    left: float
    right: float
    top: float
    bottom: float
    width: float = WIDTH
    height: float = HEIGHT

    @property
    def x_title_at(self) -> tuple[float, float]:
        """(x, y) of the x title's baseline centre: below the tick labels, centred on the plot."""
        return round((self.left + self.right) / 2, 1), round(self.height - 4, 1)

    @property
    def y_title_at(self) -> tuple[float, float]:
        """(x, y) of the y title's centre before it is turned a quarter left about the origin."""
        return round(-(self.top + self.bottom) / 2, 1), LABEL_PX + 2


def line_chart(data: dict[str, list[tuple[float, float]]], *, x_label: str, y_label: str) -> LineChart:
    """Scale series of (x, y) into an SVG box: x from the smallest to the largest x, y from 0.

    The margins come from the labels: the left one from the widest y tick label, the right one from
    half the last x tick label (centred on the plot's edge), so that 1,000,000 is never cut.
    """
    xs = [x for pts in data.values() for x, _ in pts] or [0.0, 1.0]
    ys = [y for pts in data.values() for _, y in pts] or [1.0]
    x_min, x_max = min(xs), max(xs)
    y_max = max(ys) or 1.0
    span_x = (x_max - x_min) or 1.0
    x_values = [x_min + span_x * k / 4 for k in range(5)]
    y_values = [y_max * k / 4 for k in range(5)]
    x_texts, y_texts = [_fmt(x) for x in x_values], [_fmt(y) for y in y_values]
    widest_y = max(text_width(t, TICK_PX) for t in y_texts)
    left = max(TITLE_BAND + widest_y + TICK_GAP, text_width(x_texts[0], TICK_PX) / 2 + 2)
    right = WIDTH - max(PAD_RIGHT, text_width(x_texts[-1], TICK_PX) / 2 + 2)
    top, bottom = PAD_TOP, HEIGHT - (TICK_PX + TICK_GAP + TITLE_BAND + 6)
    plot_w, plot_h = right - left, bottom - top

    def sx(x: float) -> float:
        return round(left + (x - x_min) / span_x * plot_w, 1)

    def sy(y: float) -> float:
        return round(top + plot_h - y / y_max * plot_h, 1)

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
    return LineChart(
        series=series,
        x_label=x_label,
        y_label=y_label,
        x_ticks=[(sx(x), t) for x, t in zip(x_values, x_texts, strict=True)],
        y_ticks=[(sy(y), t) for y, t in zip(y_values, y_texts, strict=True)],
        left=round(left, 1),
        right=round(right, 1),
        top=top,
        bottom=round(bottom, 1),
    )


def _fmt(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"
