"""Take it with you: a run, a comparison or a track as Markdown, and a plan as JSON for plan viewers.

Each Markdown export is a page with the text ready to copy (JavaScript not needed), the same text
as a .md download (`?download=1`), and JSON (`{"filename", "markdown"}`) for a script.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

import recipes
from playground.models import Run
from playground.running import progress, service
from playground.templatetags.playground import share_url
from playground.web.respond import Refusal, refusals, respond
from playground.web.tracks import track_or_404
from recipes.export import answer_md, compare_md, declared_order, plan_for_viewers, run_md, verdict_md
from recipes.results import RunResult, result_from_json, stored_as
from recipes.tracks import Track

MAX_COMPARED = 12


def _stored(request: HttpRequest, run_id: int) -> tuple[Run, RunResult]:
    stored = service.stored_run(request.session, run_id)
    if stored is None:
        raise Http404("no such run in this session")
    return stored, stored_as(result_from_json(stored.result), stored.pk)


def _title(result: RunResult) -> str:
    recipe = recipes.get(result.recipe)
    return recipe.title if recipe else result.recipe


def _link(request: HttpRequest, result: RunResult) -> str:
    link = share_url(result.recipe, result.variant, declared_order(result), result.server_version)
    return request.build_absolute_uri(link)


def markdown(request: HttpRequest, text: str, *, filename: str, title: str, back: str) -> HttpResponse:
    """The export as a page to copy from, a .md download, or JSON, as the client asks."""
    if request.GET.get("download"):
        response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    context = {"markdown": text, "title": title, "back": back, "download": f"{request.path}?download=1"}
    return respond(
        request, "export.html", context, data={"filename": filename, "markdown": text}, partial=None
    )


@require_GET
@refusals()
def run_export(request: HttpRequest, run_id: int) -> HttpResponse:
    stored, result = _stored(request, run_id)
    text = run_md(result, title=_title(result), link=_link(request, result), level=1)
    name = f"{result.recipe}-{result.variant}-run-{stored.pk}.md"
    return markdown(
        request,
        text,
        filename=name,
        title=f"{_title(result)} · {result.variant}",
        back=reverse("run", args=[stored.pk]),
    )


@require_GET
@refusals()
def run_plan(request: HttpRequest, run_id: int) -> JsonResponse:
    """The plan in the shape explain.dalibo.com takes: {"title", "plan", "query"}."""
    stored, result = _stored(request, run_id)
    try:
        data = plan_for_viewers(result, title=f"{_title(result)} · {result.variant} (run {stored.pk})")
    except ValueError as exc:
        raise Http404(str(exc)) from None
    response = JsonResponse(data, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = (
        f'attachment; filename="{result.recipe}-{result.variant}-plan-{stored.pk}.json"'
    )
    return response


def _run_ids(query: Mapping[str, Any]) -> list[int]:
    try:
        ids = [int(part) for part in str(query.get("ids", "")).split(",") if part.strip()]
    except ValueError:
        raise Refusal(400, errors={"ids": ["Give run ids separated by commas: ?ids=4,5,6."]}) from None
    if not 1 <= len(ids) <= MAX_COMPARED:
        raise Refusal(400, errors={"ids": [f"Give between 1 and {MAX_COMPARED} run ids: ?ids=4,5,6."]})
    return ids


@require_GET
@refusals()
def runs_export(request: HttpRequest) -> HttpResponse:
    """Several of this session's runs (a comparison) side by side, then each in full."""
    results = [_stored(request, run_id)[1] for run_id in _run_ids(request.GET)]
    titles = sorted({_title(r) for r in results})
    title = f"{' / '.join(titles)}: {len(results)} runs compared"
    links = {r.run_id: _link(request, r) for r in results if r.run_id}
    text = compare_md(results, title=title, links=links)
    return markdown(
        request,
        text,
        filename="runs-" + "-".join(str(r.run_id) for r in results) + ".md",
        title=title,
        back=reverse("history"),
    )


def track_md(request: HttpRequest, track: Track) -> str:
    """The track as walked so far: each step's question or challenge, the outcome, and its run."""
    done = progress.progress(request.session, track)
    rows = progress.outcomes(request.session, track)
    parts = [f"# {track.title}", "", f"{done.done_count} of {done.total} steps done"]
    if done.predictions:
        parts[-1] += f"; first guess right on {done.right} of {done.predictions} predictions"
    for step in track.steps:
        parts += ["", f"## Step {step.number}: {step.title}", "", f"Recipe: {step.recipe.title}", ""]
        row = rows.get(step.number)
        if row is None:
            parts.append("Not tried yet.")
            continue
        outcome = row.outcome
        parts.append(
            answer_md(outcome["answer"]) if outcome.get("answer") else verdict_md(outcome["verdict"])
        )
        if row.run is not None:
            result = stored_as(result_from_json(row.run.result), row.run.pk)
            parts += ["", run_md(result, title=step.recipe.title, link=_link(request, result), level=3)]
    return "\n".join(parts).rstrip() + "\n"


@require_GET
@refusals()
def track_export(request: HttpRequest, slug: str) -> HttpResponse:
    track = track_or_404(slug)
    text = track_md(request, track)
    return markdown(
        request,
        text,
        filename=f"track-{track.slug}.md",
        title=track.title,
        back=reverse("track", args=[slug]),
    )
