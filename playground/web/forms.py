"""Forms that render a recipe's declared parameters and a sweep's settings; they validate nothing.

Values and messages come from `Recipe.validate` and `sweeps.validate_sweep`: a form here only turns
declared `Param`s into widgets and shows what validation read and said, so the page and the JSON
API cannot disagree about what is valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms.utils import ErrorDict

from playground import sandbox
from playground.running import sweeps
from recipes.base import Param, Recipe

Errors = Mapping[str, list[str]]


def field_for(param: Param) -> forms.Field:
    """The widget of one declared parameter, with its bounds as HTML attributes."""
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


class ShownForm(forms.Form):
    """An unbound form that shows given values and given errors."""

    def show(self, values: Mapping[str, Any], errors: Errors, *, strays: bool) -> None:
        """`strays`: list errors of names this form has no field for above the fields."""
        self.initial = dict(values)
        shown = {
            name: self.error_class(messages, renderer=self.renderer, field_id=self[name].auto_id)
            for name, messages in errors.items()
            if name in self.fields
        }
        stray = [f"{name}: {m}" for name, ms in errors.items() if name not in self.fields for m in ms]
        if strays and stray:
            shown[NON_FIELD_ERRORS] = self.error_class(stray, error_class="nonfield", renderer=self.renderer)
        # An unbound form never cleans, so the errors it reports are exactly these.
        self._errors = ErrorDict(shown, renderer=self.renderer)


class RunForm(ShownForm):
    """The variant and the recipe's parameters, showing `values` and the `errors` found in them."""

    def __init__(
        self,
        recipe: Recipe,
        values: Mapping[str, Any] | None = None,
        *,
        errors: Errors | None = None,
        pick_version: bool = True,
    ):
        super().__init__()
        self.recipe = recipe
        self.fields["variant"] = forms.ChoiceField(
            choices=[(v.slug, v.label) for v in recipe.variants.values()],
            widget=forms.RadioSelect,
            label="Variant",
        )
        offered = sandbox.versions()
        if pick_version and len(offered) > 1:  # `pg`: which PostgreSQL runs it (versions.py)
            self.fields["pg"] = forms.TypedChoiceField(
                choices=[(v, f"PostgreSQL {v}") for v in reversed(offered)],
                coerce=int,
                widget=forms.RadioSelect,
                label="PostgreSQL",
                required=False,
            )
        for param in recipe.params:
            self.fields[param.name] = field_for(param)
        defaults = {**recipe.defaults(), "variant": recipe.default_variant, "pg": sandbox.default_version()}
        self.show({**defaults, **(values or {})}, errors or {}, strays=True)


class SweepForm(ShownForm):
    """Which numeric parameter to sweep, over which range, and what to plot.

    `params`: the recipe's parameters the page shows, to say where an open range would end.
    """

    repeats = sweeps.REPEATS

    def __init__(
        self,
        recipe: Recipe,
        values: Mapping[str, Any] | None = None,
        *,
        errors: Errors | None = None,
        params: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        settings = sweeps.settings_of(recipe)
        for param in settings:
            self.fields[param.name] = field_for(param)
        self.fields["sweep_param"].choices = _labelled(p for p in recipe.params if p.sweepable)
        self.fields["sweep_y"].choices = list(sweeps.Y_AXES.items())
        first = settings[0].default
        end = sweeps.range_end(recipe, first, params) if first else None
        if first in recipe.sweep_defaults.ends:
            self.fields["sweep_to"].help_text = "Empty: where the data ends for the parameters above" + (
                f" ({end:,} for the values shown)." if end is not None else "."
            )
            if end is not None:
                self.fields["sweep_to"].widget.attrs["placeholder"] = f"{end}"
        most, lines = sweeps.max_points(recipe), sweeps.widest_lines(recipe)
        self.fields["sweep_points"].help_text = (
            f"At most {most}: {lines} lines × {most} points fit in the {sweeps.run_budget()} runs "
            "a session may start at once, paid before the first point."
        )
        self.show({**{p.name: p.default for p in settings}, **(values or {})}, errors or {}, strays=False)


def _labelled(params: Iterable[Param]) -> list[tuple[str, str]]:
    return [(p.name, p.label or p.name) for p in params]
