"""Views for looking across runs: sweeps, the session's history, a stored run, and plan diffs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET, require_POST

import recipes
from playground.running import limits, service, sweeps
from playground.running.deadline import client_of
from playground.web import sql
from playground.web.charts import LineChart, line_chart
from playground.web.forms import RunForm, SweepForm
from playground.web.recipe_page import page_context, recipe_or_404, refused_page, shown, sweep_request
from playground.web.respond import KNOWN, Refusal, as_refusal, refusals, respond
from playground.web.versions import asked_version, link_version, shown_version
from recipes import scratchpad
from recipes.base import Recipe
from recipes.results import result_from_json


@require_POST
@refusals(refused_page)
def recipe_sweep(request: HttpRequest, slug: str) -> HttpResponse:
    """Run one point of a sweep (htmx: the page asks for the next) or all of it (JSON, no JS).

    The sweep is paid for as a whole by its first request. A point that fails anyway (the database
    restarting, the setup timing out) stops the sweep with a message, the points drawn kept.
    """
    recipe = recipe_or_404(slug)
    chosen, spec = sweep_request(recipe, request.POST)
    version = asked_version(request.POST)
    steps = sweeps.steps_asked(request.POST, spec, one_at_a_time=bool(request.htmx))
    sweep_id = sweeps.sweep_id(request.POST.get("sweep_id"))
    per_point = sweeps.runs_of(recipe, spec, 1)
    to_come = len(spec.values) - steps[-1] - 1
    limits.pay_for_sweep(request.session, sweep_id, now=per_point * len(steps), later=per_point * to_come)
    refused: list[str] = []
    gone = client_of(request.META)
    done, failure = steps[0], None
    try:
        for step in steps:
            refused += service.sweep_step(
                request.session,
                recipe,
                chosen.params,
                spec,
                sweep_id,
                step,
                client_gone=gone,
                version=version,
            )
            done = step + 1
    except KNOWN as exc:
        failure = exc
        limits.refund_sweep(request.session, sweep_id, unused=per_point * (steps[-1] + 1 - done))
    points = service.sweep_points(request.session, sweep_id, spec.param, spec.y)
    if failure is not None and not points.lines:
        raise failure  # nothing to keep on screen: refused like a run
    stopped = _stopped_message(done, len(spec.values), failure) if failure is not None else None
    chart = line_chart(points.lines, x_label=x_label(recipe, spec.param), y_label=sweeps.Y_AXES[spec.y])
    sweep = {
        "id": sweep_id,
        "chart": chart,
        "spec": spec,
        "next_step": done if request.htmx and failure is None and done < len(spec.values) else None,
        "refused": refused,
        "failed": points.failed,
        "stopped": stopped,
        "done": done,
        "total": len(spec.values),
        "measured": measured(spec.y),
    }
    form = RunForm(recipe, {**shown(chosen), **shown_version(version)})
    sweep_form = SweepForm(recipe, sweeps.read_settings(recipe, request.POST)[0], params=chosen.params)
    context = page_context(request, recipe, form, sweep_form=sweep_form, sweep=sweep)
    return respond(request, "recipe.html", context, data=_sweep_json(sweep, chart))


def x_label(recipe: Recipe, param: str) -> str:
    return recipe.param(param).label or param


def measured(y: str) -> str:
    if y in sweeps.TIMES:
        return f"each point is the median of {sweeps.REPEATS} runs"
    return "one run per point: a count is the same on every run"


def _stopped_message(done: int, total: int, failure: BaseException) -> str:
    return (
        f"Point {done + 1} of {total} did not run, so the sweep stopped there; the points drawn so far "
        f"stay. {as_refusal(failure)}"
    )


def _sweep_json(sweep: dict[str, Any], chart: LineChart) -> dict[str, Any]:
    spec = sweep["spec"]
    return {
        "sweep": str(sweep["id"]),
        "param": spec.param,
        "y": spec.y,
        "x_label": chart.x_label,
        "y_label": chart.y_label,
        "values": spec.values,
        "repeats": sweeps.REPEATS if spec.y in sweeps.TIMES else 1,
        "done": sweep["done"],
        "total": sweep["total"],
        "ok": sweep["stopped"] is None,
        "error": sweep["stopped"],
        "refused": sweep["refused"],
        "failed": sweep["failed"],
        "series": [{"label": s.label, "points": s.points} for s in chart.series],
    }


@require_GET
@refusals()
def history(request: HttpRequest) -> HttpResponse:
    runs = service.history(request.session, 50)
    data = {"runs": [_run_json(r) for r in runs]}
    return respond(request, "history.html", {"runs": runs}, data=data, partial=None)


@require_GET
@refusals()
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    stored = service.stored_run(request.session, run_id)
    if stored is None:
        raise Http404("no such run in this session")

    if stored.recipe == scratchpad.SLUG:  # SQL from the scratchpad opens in the scratchpad
        result = result_from_json(stored.result)
        context = sql.reopened(request, result, stored)
        return respond(request, "sql.html", context, data=stored.result, partial=None)

    def context() -> dict[str, Any]:
        recipe = recipe_or_404(stored.recipe)
        result = result_from_json(stored.result)
        version = link_version(result.server_version)  # reopened on the version it ran on
        form = RunForm(recipe, {**stored.params, "variant": stored.variant, **version})
        return page_context(request, recipe, form, result=result, reopened=stored)

    return respond(request, "recipe.html", context, data=stored.result, partial=None)


@require_GET
@refusals()
def run_diff(request: HttpRequest) -> HttpResponse:
    """Two runs of this session side by side: figures and plans."""
    a_id, b_id = _two_run_ids(request.GET)
    a, b = service.stored_run(request.session, a_id), service.stored_run(request.session, b_id)
    if a is None or b is None:
        raise Http404("no such run in this session")
    sides = [run_side(run) for run in (a, b)]
    changes = run_changes(*sides)
    data = {"a": _run_json(a), "b": _run_json(b), "changes": changes}
    context = {"a": sides[0], "b": sides[1], "changes": changes}
    return respond(request, "diff.html", context, data=data, partial=None)


def _two_run_ids(query: Mapping[str, Any]) -> tuple[int, int]:
    try:
        return int(query.get("a", "")), int(query.get("b", ""))
    except ValueError:
        raise Refusal(400, "Pick two runs: ?a=<run id>&b=<run id>.") from None


def run_side(run) -> dict:
    result = result_from_json(run.result)
    return {"run": run, "result": result, "plan": result.figures.plan, "recipe": recipes.get(run.recipe)}


def run_changes(a: dict, b: dict) -> list[str]:
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
        "server": run.sandbox.server or "main",
        "params": run.params,
        "ok": run.ok,
        "query_count": run.query_count,
        "elapsed_ms": run.elapsed_ms,
        "db_ms": run.db_ms,
        "rows_read": run.rows_read,
        "created_at": run.created_at.isoformat(),
    }
