"""What every view of a recipe shares: finding it, running it, its page, and the page of a refusal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse

import recipes
from playground.running import limits, service, sweeps
from playground.running.deadline import client_of
from playground.web.forms import RunForm, SweepForm
from playground.web.respond import Refusal, respond
from playground.web.versions import FIELD as PG
from playground.web.versions import asked_version, shown_version
from recipes.base import Recipe
from recipes.results import RunResult
from recipes.validation import InvalidParams, Validated, from_link


def recipe_or_404(slug: str) -> Recipe:
    recipe = recipes.get(slug)
    if recipe is None:
        raise Http404(f"unknown recipe '{slug}'")
    return recipe


def page_context(request: HttpRequest, recipe: Recipe, form: RunForm, **extra: Any) -> dict[str, Any]:
    """What recipe.html needs besides the results: the forms, this session's recent runs, and
    whether it is shown on a projector (`?projector=1`: large type, Run above the parameters)."""
    sweep_form = extra.pop("sweep_form", None) or (
        SweepForm(recipe, params=form.initial) if any(p.sweepable for p in recipe.params) else None
    )

    def recent() -> list:  # called only by full pages
        try:
            return service.history(request.session, 8)
        except DatabaseError:  # a page explaining that the database is down must still render
            return []

    projector = "1" in (request.GET.get("projector"), request.POST.get("projector"))
    context = {"recipe": recipe, "form": form, "sweep_form": sweep_form, "history": recent}
    return {**context, "projector": projector, **extra}


def shown(chosen: Validated) -> dict[str, Any]:
    """Validated input as the form shows it."""
    return {"variant": chosen.variant, **chosen.params}


def form_values(recipe: Recipe, data: Mapping[str, Any]) -> dict[str, Any]:
    """A submitted form's values as validation read them, valid or not, to show them again."""
    pg = {PG: data[PG]} if data.get(PG) else {}
    try:
        return {**shown(recipe.validate(data, form=True)), **pg}
    except InvalidParams as exc:
        return {**exc.values, **pg}


def link_form(recipe: Recipe, query: Mapping[str, Any], *, version: int | None = None) -> RunForm:
    """The form a shared link pre-fills, showing what is wrong with a hand-edited one; runs nothing.
    `version` is picked when the link names none (a workshop room's)."""
    if not query:
        return RunForm(recipe, shown_version(version)) if version else RunForm(recipe)
    try:
        version = shown_version(asked_version(query) or version)
        return RunForm(recipe, {**shown(recipe.validate(from_link(recipe, query), form=True)), **version})
    except InvalidParams as exc:
        return RunForm(recipe, exc.values, errors=exc.errors)


def validate_for_compare(recipe: Recipe, data: Mapping[str, Any]) -> Validated:
    """The posted parameters, checked against the guard of every variant: compare runs them all."""
    chosen = recipe.validate(data, form=True)
    for variant in recipe.variants:
        recipe.validate({**chosen.params, "variant": variant})
    return chosen


def sweep_request(recipe: Recipe, data: Mapping[str, Any]) -> tuple[Validated, sweeps.SweepSpec]:
    """The recipe's parameters and the sweep's settings of one form, every problem of both at once."""
    errors: dict[str, list[str]] = {}
    chosen = spec = None
    try:
        chosen = recipe.validate(data, form=True)
    except InvalidParams as exc:
        errors |= exc.errors
    try:
        spec = sweeps.validate_sweep(recipe, data, params=chosen.params if chosen else None)
    except InvalidParams as exc:
        errors |= exc.errors
    if chosen is None or spec is None:
        raise InvalidParams(errors)
    return chosen, spec


def run(request: HttpRequest, recipe: Recipe, chosen: Validated, version: int | None = None) -> RunResult:
    """One run in this session's sandbox of `version`, paid from its run allowance."""
    limits.spend_runs(request.session)
    return service.run_recipe(
        request.session,
        recipe,
        chosen.variant,
        dict(chosen.params),
        client_gone=client_of(request.META),
        version=version,
    )


def refused_page(request: HttpRequest, refusal: Refusal, slug: str) -> HttpResponse | None:
    """The recipe page (its results partial for htmx) saying why nothing ran, the input kept."""
    recipe = recipes.get(slug)
    if recipe is None:
        return None
    data = request.POST if request.method == "POST" else request.GET
    sweep_form = None
    if any(p.sweepable for p in recipe.params):
        asked = "sweep_param" in data  # a sweep was refused: show its settings as sent
        values = sweeps.read_settings(recipe, data)[0] if asked else None
        sweep_form = SweepForm(recipe, values, errors=refusal.errors, params=form_values(recipe, data))
    own = {k: v for k, v in refusal.errors.items() if sweep_form is None or k not in sweep_form.fields}
    form = RunForm(recipe, form_values(recipe, data), errors=own)
    problem = refusal.message if not refusal.errors else None
    context = page_context(request, recipe, form, sweep_form=sweep_form, problem=problem)
    return respond(request, "recipe.html", context, status=refusal.status)
