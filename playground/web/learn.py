"""Predict, then run; try a challenge: reading the input, and the views of a recipe page and the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from playground.running import learn
from playground.web.forms import RunForm
from playground.web.recipe_page import page_context, recipe_or_404, refused_page, shown
from playground.web.respond import Refusal, read_json, refusals, respond
from playground.web.versions import asked_version, shown_version
from recipes.base import Recipe
from recipes.learning import Challenge, Question
from recipes.results import jsonable
from recipes.validation import InvalidParams, Validated

Errors = dict[str, list[str]]


def _one_of(recipe: Recipe, kind: str, slug: Any) -> Question | Challenge | None:
    found = recipe.questions if kind == "question" else recipe.challenges
    return found.get(slug) if isinstance(slug, str) else None


def _unknown(recipe: Recipe, kind: str, slug: Any) -> Errors:
    known = recipe.questions if kind == "question" else recipe.challenges
    return {kind: [f"unknown {kind} {slug!r}: one of {', '.join(known) or 'none'}"]}


def validated(recipe: Recipe, data: Mapping[str, Any], *, form: bool, errors: Errors) -> Validated:
    """`data`'s variant and parameters, or InvalidParams with `errors` (found earlier) added."""
    try:
        chosen = recipe.validate(data, form=form)
    except InvalidParams as exc:
        raise InvalidParams({**errors, **exc.errors}, exc.values) from None
    if errors:
        raise InvalidParams(errors, shown(chosen))
    return chosen


def pinned(recipe: Recipe, chosen: Validated, variant: str | None, params: Mapping[str, Any]) -> Validated:
    """`chosen` with the variant a question is about and the parameters a challenge sets, checked again
    (a guard may refuse the combination)."""
    if variant is None and not params:
        return chosen
    return recipe.validate({**chosen.params, **params, "variant": variant or chosen.variant})


def read_prediction(
    recipe: Recipe, data: Mapping[str, Any], *, form: bool, question: Question | None = None
) -> tuple[Question, Any, Validated]:
    """The question asked (`question`, or the one `data` names), the guess (a number or a choice) and
    what to run, or InvalidParams."""
    slug = data.get("question")
    question = question or _one_of(recipe, "question", slug)
    errors: Errors = {} if question else _unknown(recipe, "question", slug)
    guess = None
    if isinstance(question, Question):
        raw = data.get(f"guess-{question.slug}", data.get("guess")) if form else data.get("guess")
        try:
            guess = question.read_guess("" if raw is None else raw)
        except ValueError as exc:
            errors["guess"] = [str(exc)]
    chosen = validated(recipe, _run_fields(recipe, data, form=form), form=form, errors=errors)
    assert isinstance(question, Question)
    return question, guess, pinned(recipe, chosen, question.variant, {})


def read_attempt(
    recipe: Recipe, data: Mapping[str, Any], *, form: bool, challenge: Challenge | None = None
) -> tuple[Challenge, Validated]:
    """The challenge tried (`challenge`, or the one `data` names) and what to run (with the
    parameters it sets), or InvalidParams."""
    slug = data.get("challenge")
    challenge = challenge or _one_of(recipe, "challenge", slug)
    errors = {} if challenge else _unknown(recipe, "challenge", slug)
    chosen = validated(recipe, _run_fields(recipe, data, form=form), form=form, errors=errors)
    assert isinstance(challenge, Challenge)
    chosen = pinned(recipe, chosen, None, challenge.params)
    for variant in challenge.baselines():  # run beside the attempt: each must pass the guard too
        recipe.validate({**chosen.params, "variant": variant})
    return challenge, chosen


def _run_fields(recipe: Recipe, data: Mapping[str, Any], *, form: bool) -> Mapping[str, Any]:
    """The variant and parameters of a submitted form, or of a JSON body's `variant` and `params`."""
    if form:
        return data
    params = data.get("params", {})
    if not isinstance(params, dict) or "variant" in params:
        raise Refusal(400, errors={"params": ['expected "params": {name: value, ...} without "variant"']})
    return {**params, **({"variant": data["variant"]} if "variant" in data else {})}


def prediction_json(done: learn.Prediction) -> dict[str, Any]:
    """The run as /run returns it, plus the answer: the guess beside the truth, and why."""
    return {**done.result.to_json(), "answer": jsonable(done.answer)}


def attempt_json(done: learn.Attempt) -> dict[str, Any]:
    """The run as /run returns it, plus the verdict and the runs it was compared with."""
    others = {v: r.to_json() for v, r in done.baselines.items() if r is not done.result}
    return {**done.result.to_json(), "verdict": jsonable(done.verdict), "baselines": others}


@require_POST
@refusals(refused_page)
def recipe_predict(request: HttpRequest, slug: str) -> HttpResponse:
    recipe = recipe_or_404(slug)
    version = asked_version(request.POST)
    question, guess, chosen = read_prediction(recipe, request.POST, form=True)
    done = learn.predict(request.session, recipe, question, guess, chosen, version=version)
    form = RunForm(recipe, {**shown(chosen), **shown_version(version)})
    context = page_context(request, recipe, form, result=done.result, answer=done.answer)
    return respond(request, "recipe.html", context, data=prediction_json(done))


@require_POST
@refusals(refused_page)
def recipe_challenge(request: HttpRequest, slug: str) -> HttpResponse:
    recipe = recipe_or_404(slug)
    version = asked_version(request.POST)
    challenge, chosen = read_attempt(recipe, request.POST, form=True)
    done = learn.attempt(request.session, recipe, challenge, chosen, version=version)
    form = RunForm(recipe, {**shown(chosen), **shown_version(version)})
    context = page_context(request, recipe, form, result=done.result, verdict=done.verdict)
    return respond(request, "recipe.html", context, data=attempt_json(done))


def _body(request: HttpRequest) -> dict[str, Any]:
    body = read_json(request)
    if not isinstance(body, dict):
        raise Refusal(400, "the body must be a JSON object")
    return body


@require_POST
@refusals()
def api_predict(request: HttpRequest, slug: str) -> JsonResponse:
    """`{"question": "...", "guess": 81, "variant": "...", "params": {...}, "pg": 16}` → the run and
    the answer (`pg` optional: the default version)."""
    recipe = recipe_or_404(slug)
    body = _body(request)
    version = asked_version(body)
    question, guess, chosen = read_prediction(recipe, body, form=False)
    done = learn.predict(request.session, recipe, question, guess, chosen, version=version)
    return JsonResponse(prediction_json(done))


@require_POST
@refusals()
def api_challenge(request: HttpRequest, slug: str) -> JsonResponse:
    """`{"challenge": "...", "variant": "...", "params": {...}, "pg": 16}` → the run and the verdict
    (`pg` optional: the default version)."""
    recipe = recipe_or_404(slug)
    body = _body(request)
    version = asked_version(body)
    challenge, chosen = read_attempt(recipe, body, form=False)
    done = learn.attempt(request.session, recipe, challenge, chosen, version=version)
    return JsonResponse(attempt_json(done))
