"""Views for looking across runs: sweeps, the session's history, a stored run, and plan diffs."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

import recipes
from playground.running import service
from playground.web.forms import MAX_SWEEP_RUNS, RunForm, SweepForm, json_errors
from playground.web.views import _recipe, _wants_json, guarded, page_context
from recipes.plan import summarize
from recipes.results import result_from_json


@require_POST
def recipe_sweep(request: HttpRequest, slug: str) -> HttpResponse:
    """Run one point of a sweep (htmx: the page asks for the next) or all of it (JSON, no JS)."""
    recipe = _recipe(slug)
    form = RunForm(recipe, request.POST, html=True)
    sweep_form = SweepForm(recipe, request.POST)
    valid = form.is_valid() & sweep_form.is_valid()
    spec = sweep_form.spec if valid else None
    if spec and len(service.sweep_lines(recipe, spec)) * len(spec.values) > MAX_SWEEP_RUNS:
        sweep_form.add_error("sweep_points", f"A sweep may run at most {MAX_SWEEP_RUNS} times: fewer points.")
        valid = False
    if not valid:
        errors = {**json_errors(form), **json_errors(sweep_form)}
        if _wants_json(request):
            return JsonResponse({"errors": errors}, status=400)
        context = page_context(request, recipe, form, sweep_form=sweep_form, sweep_errors=errors)
        return render(request, _template(request), context, status=400)

    sweep_id = _sweep_id(request.POST.get("sweep_id"))
    steps = range(len(spec.values))
    if request.htmx:
        step = min(max(int(request.POST.get("step", 0) or 0), 0), len(spec.values) - 1)
        steps = range(step, step + 1)

    def run_points() -> list[str]:
        session = request.session
        return [m for s in steps for m in service.sweep_step(session, recipe, form.params, spec, sweep_id, s)]

    runs = len(service.sweep_lines(recipe, spec)) * len(steps)
    refused, problem, status = guarded(request, run_points, runs)
    if problem is not None:
        if _wants_json(request):
            return JsonResponse({"error": problem}, status=status)
        context = page_context(request, recipe, form, problem=problem)
        return render(request, _template(request), context, status=status)
    chart = service.sweep_chart(request.session, sweep_id, spec)
    if _wants_json(request):
        return JsonResponse(
            {
                "sweep": str(sweep_id),
                "param": spec.param,
                "y": spec.y,
                "refused": refused,
                "series": [{"label": s.label, "points": s.points} for s in chart.series],
            }
        )
    next_step = steps[-1] + 1 if request.htmx and steps[-1] + 1 < len(spec.values) else None
    sweep = {
        "id": sweep_id,
        "chart": chart,
        "spec": spec,
        "next_step": next_step,
        "refused": refused,
        "done": steps[-1] + 1,
        "total": len(spec.values),
    }
    return render(
        request, _template(request), page_context(request, recipe, form, sweep_form=sweep_form, sweep=sweep)
    )


def _sweep_id(raw: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return uuid.uuid4()


def _template(request: HttpRequest) -> str:
    return "recipe.html#results" if request.htmx else "recipe.html"


@require_GET
def history(request: HttpRequest) -> HttpResponse:
    runs = service.history(request.session, 50)
    if _wants_json(request):
        return JsonResponse({"runs": [_run_json(r) for r in runs]})
    return render(request, "history.html", {"runs": runs})


@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    stored = service.stored_run(request.session, run_id)
    if stored is None:
        raise Http404("no such run in this session")
    if _wants_json(request):
        return JsonResponse(stored.result)
    recipe = _recipe(stored.recipe)
    form = RunForm(recipe, {**stored.params, "variant": stored.variant})
    form.is_valid()
    result = result_from_json(stored.result)
    return render(request, "recipe.html", page_context(request, recipe, form, result=result, reopened=stored))


@require_GET
def run_diff(request: HttpRequest) -> HttpResponse:
    """Two runs of this session side by side: figures and plans."""
    try:
        a_id, b_id = int(request.GET.get("a", "")), int(request.GET.get("b", ""))
    except ValueError:
        return _bad_request(request, "Pick two runs: ?a=<run id>&b=<run id>.")
    a, b = service.stored_run(request.session, a_id), service.stored_run(request.session, b_id)
    if a is None or b is None:
        raise Http404("no such run in this session")
    sides = [_side(run) for run in (a, b)]
    changes = _changes(*sides)
    if _wants_json(request):
        return JsonResponse({"a": _run_json(a), "b": _run_json(b), "changes": changes})
    return render(request, "diff.html", {"a": sides[0], "b": sides[1], "changes": changes})


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": message}, status=400)
    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


def _side(run) -> dict:
    result = result_from_json(run.result)
    plan = summarize(result.plan.json) if result.plan and result.plan.json else None
    return {"run": run, "result": result, "plan": plan, "recipe": recipes.get(run.recipe)}


def _changes(a: dict, b: dict) -> list[str]:
    """What differs between two runs, in sentences computed from their figures."""
    lines = []
    for label, key in (
        ("Queries", "query_count"),
        ("Database time (ms)", "db_ms"),
        ("Wall time (ms)", "elapsed_ms"),
    ):
        va, vb = getattr(a["run"], key), getattr(b["run"], key)
        if va != vb:
            lines.append(f"{label}: {va:,.2f} → {vb:,.2f}" + (f" (×{vb / va:.2f})" if va else ""))
    pa, pb = a["plan"], b["plan"]
    if pa and pb:
        if pa.rows_read != pb.rows_read:
            lines.append(f"Rows read by the plan: {pa.rows_read:,} → {pb.rows_read:,}")
        la, lb = [n.label for n in pa.nodes], [n.label for n in pb.nodes]
        gone, new = [x for x in la if x not in lb], [x for x in lb if x not in la]
        if gone or new:
            lines.append(
                "Plan nodes gone: " + (", ".join(gone) or "none") + "; new: " + (", ".join(new) or "none")
            )
        else:
            lines.append("Same plan shape.")
        lines.append(f"Execution time: {pa.execution_ms:.3f} ms → {pb.execution_ms:.3f} ms")
    params_changed = {
        k: (a["run"].params.get(k), v) for k, v in b["run"].params.items() if a["run"].params.get(k) != v
    }
    if params_changed:
        lines.insert(
            0, "Parameters changed: " + ", ".join(f"{k} {x} → {y}" for k, (x, y) in params_changed.items())
        )
    return lines


def _run_json(run) -> dict:
    return {
        "id": run.pk,
        "recipe": run.recipe,
        "variant": run.variant,
        "params": run.params,
        "ok": run.ok,
        "query_count": run.query_count,
        "elapsed_ms": run.elapsed_ms,
        "db_ms": run.db_ms,
        "rows_read": run.rows_read,
        "created_at": run.created_at.isoformat(),
    }
