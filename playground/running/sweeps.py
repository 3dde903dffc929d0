"""A sweep: one numeric parameter over a range, every variant run at each point, drawn as lines.

Its settings are declared as `Param`s and read by the same code as a recipe's parameters
(`recipes.validation`), then checked against the swept parameter's own bounds and the number of
runs one sweep may ask for. No Django here: the web layer only renders the settings as a form.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import recipes
from recipes.base import Param, Recipe
from recipes.validation import Errors, InvalidParams, number, read_params

Y_AXES = {
    "db_ms": "database time (ms)",
    "elapsed_ms": "wall time (ms)",
    "rows_read": "rows read (plan)",
    "query_count": "queries",
}
"""What a sweep can plot, by the `Run` column it reads."""
MAX_SWEEP_RUNS = 40
"""Runs one sweep may ask for (lines × points)."""
STEP = Param("step", "int", 0, label="Step")
"""Which point a sweep driven by the page (one request per point) asks for next."""


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
    """A sweep's settings on `recipe`'s page; the range starts as the first sweepable parameter's."""
    sweepable = [p for p in recipe.params if p.sweepable]
    first = sweepable[0] if sweepable else None
    bounds = (first.min, first.max) if first else (None, None)
    low, high = (None if b is None else int(b) for b in bounds)
    names = tuple(p.name for p in sweepable)
    return (
        Param("sweep_param", "choice", names[0] if names else "", label="Sweep", choices=names),
        Param("sweep_from", "int", low, label="from"),
        Param("sweep_to", "int", high, label="to"),
        Param("sweep_points", "int", 6, label="Points", min=2, max=10),
        Param("sweep_y", "choice", "db_ms", label="Plot", choices=tuple(Y_AXES)),
        Param("sweep_companions", "bool", True, label="Include related recipes"),
    )


def read_settings(recipe: Recipe, data: Mapping[str, Any]) -> tuple[dict[str, Any], Errors]:
    """The sweep settings a form sent, each checked on its own: (values as read, errors)."""
    return read_params(settings_of(recipe), data, form=True)


def validate_sweep(recipe: Recipe, data: Mapping[str, Any], *, form: bool = True) -> SweepSpec:
    """The sweep `data` asks of `recipe`, or `InvalidParams` with every problem per setting."""
    values, errors = read_params(settings_of(recipe), data, form=form)
    if not errors and not values["sweep_param"]:
        errors["sweep_param"] = ["This recipe has no parameter to sweep."]
    if errors:
        raise InvalidParams(errors, values)
    spec = SweepSpec(
        param=values["sweep_param"],
        start=values["sweep_from"],
        stop=values["sweep_to"],
        points=values["sweep_points"],
        y=values["sweep_y"],
        companions=values["sweep_companions"],
    )
    errors = _range_errors(recipe.param(spec.param), spec)
    if not errors and runs_of(recipe, spec, len(spec.values)) > MAX_SWEEP_RUNS:
        errors["sweep_points"] = [f"A sweep may run at most {MAX_SWEEP_RUNS} times: fewer points."]
    if errors:
        raise InvalidParams(errors, values)
    return spec


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
    return [(r, variant) for r in chosen for variant in r.variants]


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
