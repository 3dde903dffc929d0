"""Tracks: the list, one track with its progress, a step's page, and an attempt at a step."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from playground.conf import setting
from playground.running import learn, progress
from playground.templatetags.learning import challenge_card, question_card
from playground.web import track_sql
from playground.web.forms import RunForm
from playground.web.learn import attempt_json, prediction_json, read_attempt, read_prediction
from playground.web.recipe_page import form_values, shown
from playground.web.respond import Refusal, read_json, refusals, respond
from recipes import tracks
from recipes.learning import Challenge, Question
from recipes.tracks import Step, Track


@functools.lru_cache(maxsize=4)
def _load(folder: str, stamp: tuple[tuple[str, int], ...]) -> dict[str, Track]:
    return tracks.load(Path(folder))[0]


def available() -> dict[str, Track]:
    """The sound tracks of the TRACKS_DIR folder, read again when a file there changes."""
    folder = Path(setting("TRACKS_DIR"))
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    return _load(str(folder), tuple((p.name, p.stat().st_mtime_ns) for p in files))


def track_or_404(slug: str) -> Track:
    track = available().get(slug)
    if track is None:
        raise Http404(f"unknown track '{slug}'")
    return track


def step_or_404(track: Track, number: int) -> Step:
    step = track.step(number)
    if step is None:
        raise Http404(f"track '{track.slug}' has no step {number}")
    return step


def summary_json(p: progress.Progress) -> dict[str, Any]:
    """A track in a list: what it is, how long, and where this session stands."""
    t = p.track
    resume = reverse("track-step", args=[t.slug, p.next_step or len(t.steps)])
    return {
        "slug": t.slug,
        "title": t.title,
        "summary": t.summary,
        "minutes": t.minutes,
        "steps": len(t.steps),
        "progress": p.to_json(),
        "url": reverse("track", args=[t.slug]),
        "resume": resume,
    }


def track_cards(request: HttpRequest) -> list[progress.Progress]:
    """Every track with this session's progress: the list page and the shelf show them."""
    return progress.progress_of(request.session, available().values())


@require_GET
@ensure_csrf_cookie
@refusals()
def track_list(request: HttpRequest) -> HttpResponse:
    cards = track_cards(request)
    data = {"tracks": [summary_json(p) for p in cards]}
    return respond(request, "tracks.html", {"cards": cards}, data=data, partial=None)


@require_GET
@refusals()
def api_tracks(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"tracks": [summary_json(p) for p in track_cards(request)]})


@require_GET
@ensure_csrf_cookie
@refusals()
def track_page(request: HttpRequest, slug: str) -> HttpResponse:
    track = track_or_404(slug)
    done = progress.progress(request.session, track)
    data = {**track.to_json(), **summary_json(done)}
    steps = [(s, done.state(s)) for s in track.steps]
    return respond(
        request, "track.html", {"track": track, "progress": done, "steps": steps}, data=data, partial=None
    )


def step_context(
    request: HttpRequest, track: Track, step: Step, form: RunForm, **extra: Any
) -> dict[str, Any]:
    """What track_step.html needs: the step, its form and card, where the session stands, and
    whether it is on a projector (`?projector=1`)."""
    values = form.initial
    card = question_card(step.teaching, values) if step.is_question else challenge_card(step.teaching, values)
    learn_cards = {
        "questions": [card] if step.is_question else [],
        "challenges": [] if step.is_question else [card],
    }
    if track_sql.asks_for_sql(step):
        extra = {**track_sql.editor(request, step, extra), **extra}
    return {
        "track": track,
        "step": step,
        "recipe": step.recipe,
        "form": form,
        "learn": learn_cards,
        "run_url": reverse("track-step-run", args=[track.slug, step.number]),
        "progress": progress.progress(request.session, track),
        "next": track.step(step.number + 1),
        "projector": "1" in (request.GET.get("projector"), request.POST.get("projector")),
        **extra,
    }


def preset_form(step: Step) -> RunForm:
    return RunForm(step.recipe, {**step.params, "variant": step.variant}, pick_version=False)


@require_GET
@ensure_csrf_cookie
@refusals()
def track_step(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    track = track_or_404(slug)
    step = step_or_404(track, number)
    context = step_context(request, track, step, preset_form(step))
    data = {"track": track.slug, "step": step.to_json(), "progress": context["progress"].to_json()}
    return respond(request, "track_step.html", context, data=data, partial=None)


def attempt_step(request: HttpRequest, track: Track, step: Step, data: Any, *, form: bool) -> dict[str, Any]:
    """Run the step as asked (a guess or an attempt), note the progress, and say what happened."""
    recipe = step.recipe
    if isinstance(step.teaching, Question):
        question, guess, chosen = read_prediction(recipe, data, form=form, question=step.teaching)
        done = learn.predict(request.session, recipe, question, guess, chosen)
        progress.record(request.session, track, step, done.result, answer=done.answer)
        return {"chosen": chosen, "result": done.result, "answer": done.answer, "json": prediction_json(done)}
    assert isinstance(step.teaching, Challenge)
    if step.teaching.asks_for_sql:
        outcome = track_sql.attempt(request, step, data)
    else:
        challenge, chosen = read_attempt(recipe, data, form=form, challenge=step.teaching)
        tried = learn.attempt(request.session, recipe, challenge, chosen)
        outcome = {
            "chosen": chosen,
            "result": tried.result,
            "verdict": tried.verdict,
            "json": attempt_json(tried),
        }
    progress.record(request.session, track, step, outcome["result"], verdict=outcome["verdict"])
    return outcome


def step_json(request: HttpRequest, track: Track, step: Step, outcome: dict[str, Any]) -> dict[str, Any]:
    done = progress.progress(request.session, track)
    following = track.step(step.number + 1)
    next_url = reverse("track-step", args=[track.slug, following.number]) if following else None
    return {
        **outcome["json"],
        "track": track.slug,
        "step": step.number,
        "progress": done.to_json(),
        "next": next_url,
    }


def refused_step(request: HttpRequest, refusal: Refusal, slug: str, number: int) -> HttpResponse | None:
    """The step's page (its results partial for htmx) listing what was refused, the input kept."""
    track = available().get(slug)
    step = track.step(number) if track else None
    if step is None:
        return None
    if track_sql.asks_for_sql(step):  # the text kept, with why nothing ran
        problems = [m for messages in refusal.errors.values() for m in messages] or [refusal.message]
        sql = str(request.POST.get("sql", ""))
        context = step_context(request, track, step, preset_form(step), sql=sql, problems=problems)
        return respond(request, "track_step.html", context, status=refusal.status)
    form = RunForm(
        step.recipe, form_values(step.recipe, request.POST), errors=refusal.errors, pick_version=False
    )
    context = step_context(
        request, track, step, form, problem=refusal.message if not refusal.errors else None
    )
    return respond(request, "track_step.html", context, status=refusal.status)


@require_POST
@refusals(refused_step)
def track_step_run(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    track = track_or_404(slug)
    step = step_or_404(track, number)
    outcome = attempt_step(request, track, step, request.POST, form=True)
    chosen = outcome["chosen"]
    form = RunForm(step.recipe, shown(chosen), pick_version=False) if chosen else preset_form(step)
    extra = {k: outcome[k] for k in ("result", "answer", "verdict", "sql") if k in outcome}
    context = step_context(request, track, step, form, **extra)
    return respond(request, "track_step.html", context, data=step_json(request, track, step, outcome))


@require_POST
@refusals()
def api_track_step(request: HttpRequest, slug: str, number: int) -> JsonResponse:
    """`{"guess": 81, "variant": "...", "params": {...}}` (a question) or without a guess (a challenge)."""
    track = track_or_404(slug)
    step = step_or_404(track, number)
    body = read_json(request)
    if not isinstance(body, dict):
        raise Refusal(400, "the body must be a JSON object")
    params = body.get("params", {})
    if isinstance(params, dict):  # what the step presets, unless the body says otherwise
        body = {**body, "variant": body.get("variant", step.variant), "params": {**step.params, **params}}
    outcome = attempt_step(request, track, step, body, form=False)
    return JsonResponse(step_json(request, track, step, outcome))
