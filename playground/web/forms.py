"""Forms built from a recipe's declared parameters: the only place input is validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms

from recipes.base import Param, Params, Recipe


def _field(param: Param) -> forms.Field:
    common = {"label": param.label or param.name, "help_text": param.help, "required": False}
    match param.kind:
        case "int":
            return forms.IntegerField(min_value=param.min, max_value=param.max, **common)
        case "float":
            return forms.FloatField(min_value=param.min, max_value=param.max, **common)
        case "bool":
            return forms.BooleanField(**common)
        case "choice":
            return forms.ChoiceField(choices=[(c, c) for c in param.choices], **common)
        case "str":
            return forms.CharField(max_length=param.max_length, strip=False, **common)
    raise ValueError(f"unknown parameter kind {param.kind!r}")


class RunForm(forms.Form):
    """The variant to run and the recipe's parameters; blanks take the defaults."""

    def __init__(
        self, recipe: Recipe, data: Mapping[str, Any] | None = None, *, html: bool = False, **kwargs: Any
    ):
        """`html`: the data comes from the HTML form, where an unticked checkbox is simply absent."""
        self.recipe = recipe
        if data is not None:
            unticked = {p.name: False for p in recipe.params if p.kind == "bool"} if html else {}
            data = {**recipe.defaults(), "variant": recipe.default_variant, **unticked, **_present(data)}
            if recipe.variant_alias and recipe.variant_alias in data:
                data["variant"] = data.pop(recipe.variant_alias)
        super().__init__(data, **kwargs)
        self.fields["variant"] = forms.ChoiceField(
            choices=[(v.slug, v.label) for v in recipe.variants.values()],
            widget=forms.RadioSelect,
            label="Variant",
        )
        for param in recipe.params:
            self.fields[param.name] = _field(param)
        self.initial = {**recipe.defaults(), "variant": recipe.default_variant, **self.initial}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for param in self.recipe.params:
            if cleaned.get(param.name) in (None, "") and param.kind != "bool":
                cleaned[param.name] = param.default
        if self.recipe.guard_hook and not self.errors and cleaned.get("variant"):
            for field, message in self.recipe.guard_hook(cleaned["variant"], Params(self.params)).items():
                self.add_error(field, message)
        return cleaned

    @property
    def params(self) -> dict[str, Any]:
        return {p.name: self.cleaned_data.get(p.name, p.default) for p in self.recipe.params}


def _present(data: Mapping[str, Any]) -> dict[str, Any]:
    """Submitted values, leaving out blanks so that they fall back to defaults."""
    getlist = getattr(data, "getlist", None)
    values = {k: (getlist(k)[-1] if getlist else v) for k, v in data.items()}
    return {k: v for k, v in values.items() if v not in ("", None)}


def json_errors(form: forms.Form) -> dict[str, list[str]]:
    return {field: [str(e) for e in errors] for field, errors in form.errors.items()}


Y_AXES = {
    "db_ms": "database time (ms)",
    "elapsed_ms": "wall time (ms)",
    "rows_read": "rows read (plan)",
    "query_count": "queries",
}
MAX_SWEEP_RUNS = 40
"""Runs one sweep may ask for (lines × points)."""


@dataclass(frozen=True)
class SweepSpec:
    param: str
    start: int
    stop: int
    points: int
    y: str
    companions: bool

    @property
    def values(self) -> list[int]:
        step = (self.stop - self.start) / (self.points - 1)
        return sorted({round(self.start + step * k) for k in range(self.points)})


class SweepForm(forms.Form):
    """Which numeric parameter to sweep, over which range, and what to plot."""

    sweep_points = forms.IntegerField(min_value=2, max_value=10, initial=6, label="Points")
    sweep_y = forms.ChoiceField(choices=list(Y_AXES.items()), initial="db_ms", label="Plot")
    sweep_companions = forms.BooleanField(required=False, initial=True, label="Include related recipes")

    def __init__(self, recipe: Recipe, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.recipe = recipe
        self.sweepable = [p for p in recipe.params if p.sweepable]
        self.fields["sweep_param"] = forms.ChoiceField(
            choices=[(p.name, p.label or p.name) for p in self.sweepable], label="Sweep"
        )
        first = self.sweepable[0] if self.sweepable else None
        self.fields["sweep_from"] = forms.IntegerField(label="from", initial=first.min if first else None)
        self.fields["sweep_to"] = forms.IntegerField(label="to", initial=first.max if first else None)
        self.order_fields(["sweep_param", "sweep_from", "sweep_to", "sweep_points", "sweep_y"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        param = next((p for p in self.sweepable if p.name == cleaned.get("sweep_param")), None)
        start, stop = cleaned.get("sweep_from"), cleaned.get("sweep_to")
        if param is None or start is None or stop is None:
            return cleaned
        if start >= stop:
            self.add_error("sweep_to", "The range must go up: 'to' above 'from'.")
        for name, value in (("sweep_from", start), ("sweep_to", stop)):
            if param.min is not None and value < param.min or param.max is not None and value > param.max:
                self.add_error(
                    name, f"{param.label or param.name} must stay between {param.min:,} and {param.max:,}."
                )
        return cleaned

    @property
    def spec(self) -> SweepSpec:
        c = self.cleaned_data
        return SweepSpec(
            param=c["sweep_param"],
            start=c["sweep_from"],
            stop=c["sweep_to"],
            points=c["sweep_points"],
            y=c["sweep_y"],
            companions=c["sweep_companions"],
        )
