"""Frozen snapshots: a read-only, unguessable link to a stored run, a compare or a sweep, for
pasting into a chat.

A share link only pre-fills a recipe's form; a snapshot shows the result as it was (rows,
statements, plan, figures; a compare's table; a sweep's chart), and still does after the runs'
sandbox was reaped. What is frozen is always read back from the session's own stored runs,
never taken from the request, so a link can only ever show what really ran.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from playground.models import Run, Snapshot
from playground.running import service, sweeps
from playground.web.charts import comparison_rows, line_chart
from playground.web.explore import measured, x_label
from playground.web.recipe_page import recipe_or_404
from playground.web.respond import Refusal, refusals, respond, wants_json
from recipes import scratchpad
from recipes.results import result_from_json

MAX_COMPARED = 20
"""Runs one compare snapshot may hold (a recipe has a handful of variants)."""


def _frozen(request: HttpRequest, kind: str, recipe: str, result: Any, ran_at: datetime) -> HttpResponse:
    """Store the snapshot and go to its link (JSON: the link)."""
    token = secrets.token_urlsafe(32)
    Snapshot.objects.create(token=token, kind=kind, recipe=recipe, result=result, ran_at=ran_at)
    url = reverse("snapshot", args=[token])
    if wants_json(request):
        return JsonResponse({"url": request.build_absolute_uri(url)}, status=201)
    return redirect(url)


@require_POST
@refusals()
def run_snapshot(request: HttpRequest, run_id: int) -> HttpResponse:
    """Freeze one of this session's runs (never another session's) and go to its link."""
    stored = service.stored_run(request.session, run_id)
    if stored is None:
        raise Http404("no such run in this session")
    return _frozen(request, "run", stored.recipe, stored.result, stored.created_at)


def _run_ids(raw: Any) -> list[int]:
    parts = [p.strip() for p in str(raw or "").split(",") if p.strip()]
    if not parts or len(parts) > MAX_COMPARED or not all(p.isdigit() for p in parts):
        raise Refusal(400, errors={"ids": [f"Name 1 to {MAX_COMPARED} run ids, separated by commas."]})
    return list(dict.fromkeys(int(p) for p in parts))


@require_POST
@refusals()
def compare_snapshot(request: HttpRequest) -> HttpResponse:
    """Freeze a compare: this session's runs `ids` (one per variant) of one recipe."""
    stored = [service.stored_run(request.session, run_id) for run_id in _run_ids(request.POST.get("ids"))]
    runs: list[Run] = [r for r in stored if r is not None]
    if len(runs) != len(stored):
        raise Http404("no such run in this session")
    if len({r.recipe for r in runs}) != 1:
        raise Refusal(400, errors={"ids": ["A compare holds runs of one recipe."]})
    result = {"runs": [r.result for r in runs]}
    return _frozen(request, "compare", runs[0].recipe, result, max(r.created_at for r in runs))


@require_POST
@refusals()
def sweep_snapshot(request: HttpRequest, slug: str) -> HttpResponse:
    """Freeze a sweep of this session: its lines as drawn from its stored runs."""
    recipe = recipe_or_404(slug)
    param, y = str(request.POST.get("sweep_param", "")), str(request.POST.get("sweep_y", ""))
    if param not in {p.name for p in recipe.params} or y not in sweeps.Y_AXES:
        raise Refusal(400, "Name the swept parameter and what the chart plots.")
    try:
        sweep = uuid.UUID(str(request.POST.get("sweep_id", "")))
    except ValueError:
        raise Refusal(400, errors={"sweep_id": ["Name the sweep to freeze."]}) from None
    points = service.sweep_points(request.session, sweep, param, y)
    if not points.lines:
        raise Http404("no such sweep in this session")
    mine = Run.objects.filter(sandbox__role__in=service.session_roles(request.session), sweep=sweep)
    ran_at = mine.order_by("-created_at").values_list("created_at", flat=True)[0]
    result = {
        "param": param,
        "y": y,
        "x_label": x_label(recipe, param),
        "y_label": sweeps.Y_AXES[y],
        "measured": measured(y),
        "lines": points.lines,
        "failed": points.failed,
    }
    return _frozen(request, "sweep", recipe.slug, result, ran_at)


def _compare_context(frozen: Snapshot) -> dict[str, Any]:
    results = [replace(result_from_json(r), run_id=None) for r in frozen.result["runs"]]
    return {"comparison": comparison_rows(results)}


def _sweep_context(frozen: Snapshot) -> dict[str, Any]:
    data = frozen.result
    lines = {label: [(x, y) for x, y in pts] for label, pts in data["lines"].items()}
    drawn = max(len(pts) for pts in lines.values())
    chart = line_chart(lines, x_label=data["x_label"], y_label=data["y_label"])
    sweep = {"chart": chart, "measured": data["measured"], "done": drawn, "total": drawn}
    return {"sweep": {**sweep, "next_step": None, "stopped": None, "refused": [], "failed": data["failed"]}}


@require_GET
@refusals()
def snapshot(request: HttpRequest, token: str) -> HttpResponse:
    frozen = Snapshot.objects.filter(token=token).first()
    if frozen is None:
        raise Http404("no snapshot has this link")
    # SQL from the scratchpad belongs to no recipe on the shelf: it froze under the scratchpad's.
    recipe = scratchpad.recipe if frozen.recipe == scratchpad.SLUG else recipe_or_404(frozen.recipe)
    context: dict[str, Any] = {"recipe": recipe, "frozen": frozen}
    data = frozen.result
    if frozen.kind == "compare":
        context |= _compare_context(frozen)
        data = {"kind": "compare", "recipe": recipe.slug, **frozen.result}
    elif frozen.kind == "sweep":
        context |= _sweep_context(frozen)
        data = {"kind": "sweep", "recipe": recipe.slug, **frozen.result}
    else:  # no links into a session's history
        context["result"] = replace(result_from_json(frozen.result), run_id=None)
    return respond(request, "snapshot.html", context, data=data, partial=None)
