"""A sweep: one numeric parameter over a range, every variant run at each point, drawn as lines.

Its settings are declared as `Param`s and read by the same code as a recipe's parameters
(`recipes.validation`), then checked against the swept parameter's own bounds and against the
run allowance: a sweep is paid for as a whole before its first point runs (see
`limits.pay_for_sweep`), so the form offers no more points than a fresh session can pay for.
The web layer only renders the settings as a form.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import recipes
from playground.conf import setting
from recipes.base import SWEEP_FIGURES, Param, Params, Recipe
from recipes.validation import Errors, InvalidParams, number, pick, read_params

Y_AXES = {
    "db_ms": "Database time (ms)",
    "elapsed_ms": "Wall time (ms)",
    "rows_read": "Rows read by the plan (rows)",
    "query_count": "Queries sent (queries)",
}
"""What a sweep can plot, by the `Run` column it reads, labelled with its unit."""
assert tuple(Y_AXES) == SWEEP_FIGURES
MAX_SWEEP_RUNS = 40
"""Runs one sweep may ask for (lines × points), whatever the run allowance."""
MAX_POINTS = 10
DEFAULT_POINTS = 6
REPEATS = 3
"""Runs behind each point of a line that plots a time: the point is the middle one, so that one run
slowed by a cold cache or a neighbour does not bend the line. Only that run is kept and charged:
the allowance counts the points a person asked for, and the repetitions run back to back in the
same run slot, adding time to the request but no concurrency. A count (rows read, queries) is the
same on every run, so it takes one."""
TIMES = frozenset({"db_ms", "elapsed_ms"})
"""The figures that vary from run to run."""
STEP = Param("step", "int", 0, label="Step")
"""Which point a sweep driven by the page (one request per point) asks for next."""


def run_budget() -> int:
    """Runs one sweep may cost: what a fresh session's allowance holds, at most `MAX_SWEEP_RUNS`."""
    return min(MAX_SWEEP_RUNS, setting("RUN_BURST"))


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep request."""

    param: str
    """Name of the swept parameter."""
    start: int
    """First value of the range."""
    stop: int
    """Last value of the range (above `start`)."""
    points: int
    """How many values, spread evenly from `start` to `stop`."""
    y: str
    """What the chart plots: a key of `Y_AXES`."""
    companions: bool
    """Whether the recipe's companion recipes draw their lines too."""

    @property
    def values(self) -> list[int]:
        step = (self.stop - self.start) / (self.points - 1)
        return sorted({round(self.start + step * k) for k in range(self.points)})


def settings_of(recipe: Recipe) -> tuple[Param, ...]:
    """A sweep's settings on `recipe`'s page; the range starts as the first sweepable parameter's.

    When the recipe says where that parameter's data ends (`SweepDefaults.ends`), "to" starts
    empty and means "there", for the parameters sent with the sweep.
    """
    sweepable = [p for p in recipe.params if p.sweepable]
    first = sweepable[0] if sweepable else None
    low = None if first is None or first.min is None else int(first.min)
    high = None if first is None or first.max is None else int(first.max)
    if first is not None and first.name in recipe.sweep_defaults.ends:
        high = None
    names = tuple(p.name for p in sweepable)
    most = max_points(recipe)
    return (
        Param("sweep_param", "choice", names[0] if names else "", label="Sweep", choices=names),
        Param("sweep_from", "int", low, label="from"),
        Param("sweep_to", "int", high, label="to"),
        Param("sweep_points", "int", min(DEFAULT_POINTS, most), label="Points", min=2, max=most),
        Param("sweep_y", "choice", recipe.sweep_defaults.y, label="Plot", choices=tuple(Y_AXES)),
        Param("sweep_companions", "bool", True, label="Include related recipes"),
    )


def max_points(recipe: Recipe) -> int:
    """Most points a sweep of `recipe` may have: with every line drawn, within `run_budget()`."""
    return max(2, min(MAX_POINTS, run_budget() // widest_lines(recipe)))


def widest_lines(recipe: Recipe) -> int:
    """Lines the widest sweep of `recipe` draws: its variants and its companions' variants."""
    sweepable = [p.name for p in recipe.params if p.sweepable]
    specs = [SweepSpec(name, 0, 1, 2, recipe.sweep_defaults.y, True) for name in sweepable]
    return max((len(sweep_lines(recipe, spec)) for spec in specs), default=1)


def range_end(recipe: Recipe, param: str, params: Mapping[str, Any] | None) -> int | None:
    """Where the data of `param` ends for `params` (the recipe's `SweepDefaults.ends`), within the
    parameter's bounds; None when the recipe does not say, or `params` cannot tell."""
    end = recipe.sweep_defaults.ends.get(param)
    if end is None:
        return None
    try:
        top = int(end(Params({**recipe.defaults(), **(params or {})})))
    except (TypeError, ValueError, ArithmeticError):  # values as typed into a form, not yet valid
        return None
    bounds = recipe.param(param)
    low = int(bounds.min) if bounds.min is not None else top
    high = int(bounds.max) if bounds.max is not None else top
    return min(max(top, low), high)


def read_settings(recipe: Recipe, data: Mapping[str, Any]) -> tuple[dict[str, Any], Errors]:
    """The sweep settings a form sent, each checked on its own: (values as read, errors)."""
    return read_params(settings_of(recipe), _open_range(recipe, data), form=True)


def _open_range(recipe: Recipe, data: Mapping[str, Any], form: bool = True) -> Mapping[str, Any]:
    """An emptied "to" means where the data ends, for a parameter whose recipe says where that is;
    for any other it stays a missing value."""
    swept = pick(data, "sweep_param", form=form) if "sweep_param" in data else settings_of(recipe)[0].default
    if pick(data, "sweep_to", form=form) != "" or swept not in recipe.sweep_defaults.ends:
        return data
    return {k: pick(data, k, form=form) for k in data if k != "sweep_to"}


def validate_sweep(
    recipe: Recipe, data: Mapping[str, Any], *, params: Mapping[str, Any] | None = None, form: bool = True
) -> SweepSpec:
    """The sweep `data` asks of `recipe`, or `InvalidParams` with every problem per setting.

    `params`: the recipe's parameters sent with it, which tell where an open range ends.
    """
    values, errors = read_params(settings_of(recipe), _open_range(recipe, data, form), form=form)
    if not errors and not values["sweep_param"]:
        errors["sweep_param"] = ["This recipe has no parameter to sweep."]
    if _above(values.get("sweep_points"), max_points(recipe)):  # say why the bound is where it is
        errors["sweep_points"] = [_too_many(recipe)]
    if errors:
        raise InvalidParams(errors, values)
    stop = values["sweep_to"]
    if stop is None:
        stop = range_end(recipe, values["sweep_param"], params)
    spec = SweepSpec(
        param=values["sweep_param"],
        start=values["sweep_from"],
        stop=stop,
        points=values["sweep_points"],
        y=values["sweep_y"],
        companions=values["sweep_companions"],
    )
    errors = _range_errors(recipe.param(spec.param), spec)
    if not errors and runs_of(recipe, spec, len(spec.values)) > run_budget():
        errors["sweep_points"] = [_over_budget(recipe, spec)]
    if errors:
        raise InvalidParams(errors, values)
    return spec


def _above(value: Any, most: int) -> bool:
    try:
        return int(str(value).strip()) > most
    except ValueError:
        return False


def _too_many(recipe: Recipe) -> str:
    most = max_points(recipe)
    lines = widest_lines(recipe)
    return (
        f"At most {most} points: this recipe's sweep draws up to {lines} lines, and {lines} × {most} = "
        f"{lines * most} runs is what fits in the {run_budget()} runs a session may start at once."
    )


def _over_budget(recipe: Recipe, spec: SweepSpec) -> str:
    lines = len(sweep_lines(recipe, spec))
    return (
        f"This sweep needs {lines * len(spec.values)} runs ({lines} lines × {len(spec.values)} points) "
        f"and a session may start {run_budget()} at once: use fewer points."
    )


def _range_errors(param: Param, spec: SweepSpec) -> Errors:
    errors: Errors = {}
    if spec.start is None or spec.stop is None:
        return {"sweep_from": [f"Enter the range of {param.label or param.name} to sweep."]}
    if spec.start >= spec.stop:
        errors["sweep_to"] = ["The range must go up: 'to' above 'from'."]
    for name, value in (("sweep_from", spec.start), ("sweep_to", spec.stop)):
        if (param.min is not None and value < param.min) or (param.max is not None and value > param.max):
            errors.setdefault(name, []).append(f"{param.label or param.name} must stay {_bounds(param)}.")
    return errors


def _bounds(param: Param) -> str:
    if param.min is not None and param.max is not None:
        return f"between {number(param.min):,} and {number(param.max):,}"
    if param.min is not None:
        return f"at or above {number(param.min):,}"
    return f"at or below {number(param.max):,}"


def sweep_lines(recipe: Recipe, spec: SweepSpec) -> list[tuple[Recipe, str]]:
    """(recipe, variant) of every line a sweep draws."""
    chosen = [recipe]
    if spec.companions:
        chosen += [r for slug in recipe.companions if (r := recipes.get(slug)) and spec.param in r.defaults()]
    return [
        (r, variant)
        for r in chosen
        for variant in r.variants
        if variant in (r.sweep_defaults.lines or r.variants)
    ]


def runs_of(recipe: Recipe, spec: SweepSpec, points: int) -> int:
    """Runs that `points` points of the sweep start: one per line at each."""
    return len(sweep_lines(recipe, spec)) * points


def steps_asked(data: Mapping[str, Any], spec: SweepSpec, *, one_at_a_time: bool) -> range:
    """The points this request runs: all of them, or the one the page asks for next."""
    if not one_at_a_time:
        return range(len(spec.values))
    values, errors = read_params([STEP], data, form=True)
    if errors:
        raise InvalidParams(errors, values)
    step = min(max(values["step"], 0), len(spec.values) - 1)
    return range(step, step + 1)


def sweep_id(raw: Any) -> uuid.UUID:
    """The sweep a point belongs to: the one the page names, or a new one."""
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return uuid.uuid4()
