"""One view per action; each renders a page, an htmx partial or JSON from the same context."""

from __future__ import annotations

import json

import psycopg
from django.db import DatabaseError, connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

import recipes
from playground import sandbox
from playground.running import limits, service
from playground.running.runner import SetupError
from playground.sandbox import SandboxLimitError
from playground.web.charts import comparison_rows
from playground.web.forms import RunForm, SweepForm, json_errors
from recipes.base import Recipe


def _recipe(slug: str) -> Recipe:
    recipe = recipes.get(slug)
    if recipe is None:
        raise Http404(f"unknown recipe '{slug}'")
    return recipe


def page_context(request: HttpRequest, recipe: Recipe, form: RunForm, **extra) -> dict:
    """What recipe.html needs besides the results: the forms and this session's recent runs."""
    sweep_form = extra.pop("sweep_form", None) or (
        SweepForm(recipe) if any(p.sweepable for p in recipe.params) else None
    )
    return {
        "recipe": recipe,
        "form": form,
        "sweep_form": sweep_form,
        "history": lambda: service.history(request.session, 8),  # called only by full pages
        **extra,
    }


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "") and not request.htmx


@require_GET
@ensure_csrf_cookie
def shelf(request: HttpRequest) -> HttpResponse:
    return render(request, "shelf.html", {"sections": recipes.by_section()})


@require_GET
@ensure_csrf_cookie
def recipe_page(request: HttpRequest, slug: str) -> HttpResponse:
    recipe = _recipe(slug)
    form = RunForm(recipe, request.GET) if request.GET else RunForm(recipe)
    if request.GET:
        form.is_valid()  # show what is wrong with a hand-edited link, run nothing
    return render(request, "recipe.html", page_context(request, recipe, form))


def posted_form(request: HttpRequest, slug: str) -> tuple[Recipe, RunForm, HttpResponse | None]:
    """The recipe and its bound form, or the 404/400 answer to send instead."""
    if recipes.get(slug) is None and _wants_json(request):
        return None, None, JsonResponse({"error": f"unknown recipe '{slug}'"}, status=404)
    recipe = _recipe(slug)
    form = RunForm(recipe, request.POST, html=True)
    if form.is_valid():
        return recipe, form, None
    if _wants_json(request):
        return recipe, form, JsonResponse({"errors": json_errors(form)}, status=400)
    return recipe, form, _render_run(request, recipe, form, None, status=400)


@require_POST
def recipe_run(request: HttpRequest, slug: str) -> HttpResponse:
    recipe, form, refusal = posted_form(request, slug)
    if refusal is not None:
        return refusal
    result, problem, status = _run(request, recipe, form)
    if _wants_json(request):
        return JsonResponse(result.to_json() if result else {"error": problem}, status=status)
    return _render_run(request, recipe, form, result, problem=problem, status=status)


def _run(request: HttpRequest, recipe: Recipe, form: RunForm):
    """(result, problem message, HTTP status): limits and setup failures are messages, not 500s."""
    variant = form.cleaned_data["variant"]
    return guarded(request, lambda: service.run_recipe(request.session, recipe, variant, form.params))


def guarded(request: HttpRequest, work, runs: int = 1):
    """Run `work()` within the session's run allowance; (value, problem, status)."""
    try:
        wait = limits.take_runs(request.session, runs)
        if wait is not None:
            return None, limits.rate_message(wait), 429
        return work(), None, 200
    except SandboxLimitError as exc:
        return None, str(exc), exc.status
    except SetupError as exc:
        return None, limits.explain_error(str(exc)), 503
    except (DatabaseError, SQLAlchemyError, psycopg.Error) as exc:  # a database down or restarting
        return None, limits.unavailable_message(exc), 503


@require_POST
def recipe_compare(request: HttpRequest, slug: str) -> HttpResponse:
    recipe, form, refusal = posted_form(request, slug)
    if refusal is not None:
        return refusal
    results, problem, status = guarded(
        request, lambda: service.compare(request.session, recipe, form.params), len(recipe.variants)
    )
    if problem is not None:
        if _wants_json(request):
            return JsonResponse({"error": problem}, status=status)
        return _render_run(request, recipe, form, None, problem=problem, status=status)
    if _wants_json(request):
        return JsonResponse({"recipe": recipe.slug, "runs": [r.to_json() for r in results]})
    context = page_context(request, recipe, form, comparison=comparison_rows(results))
    return render(request, "recipe.html#results" if request.htmx else "recipe.html", context)


def _render_run(request, recipe, form, result, *, problem=None, status=200) -> HttpResponse:
    context = page_context(request, recipe, form, result=result, problem=problem)
    template = "recipe.html#results" if request.htmx else "recipe.html"
    return render(request, template, context, status=status)


@require_GET
@ensure_csrf_cookie
def api_recipes(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"recipes": [r.to_json() for r in recipes.REGISTRY.values()]})


@require_POST
def api_run(request: HttpRequest, slug: str) -> JsonResponse:
    recipe = recipes.get(slug)
    if recipe is None:
        return JsonResponse({"error": f"unknown recipe '{slug}'"}, status=404)
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"error": "the body must be a JSON object"}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("params", {}), dict):
        return JsonResponse({"error": 'expected {"variant": "...", "params": {...}}'}, status=400)
    params = body.get("params", {})
    unknown = sorted(set(params) - {p.name for p in recipe.params} - {recipe.variant_alias})
    if unknown:
        return JsonResponse({"errors": {"params": [f"unknown parameter '{n}'" for n in unknown]}}, status=400)
    data = {k: v for k, v in params.items()}
    if "variant" in body:
        data["variant"] = body["variant"]
    form = RunForm(recipe, data)
    if not form.is_valid():
        return JsonResponse({"errors": json_errors(form)}, status=400)
    result, problem, status = _run(request, recipe, form)
    return JsonResponse(result.to_json() if result else {"error": problem}, status=status)


@require_POST
def sandbox_reset(request: HttpRequest) -> HttpResponse:
    done = service.reset_sandbox(request.session)
    message = (
        "Sandbox reset: every table is gone and will be re-seeded on the next run."
        if done
        else ("Nothing to reset yet: this session has no sandbox.")
    )
    if _wants_json(request):
        return JsonResponse({"ok": True, "reset": done, "message": message})
    if request.htmx:
        return render(request, "_components.html#flash", {"message": message})
    return redirect(
        request.POST.get("next") if str(request.POST.get("next", "")).startswith("/recipes/") else "shelf"
    )


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["app_database"] = "ok"
    except Exception as exc:
        checks["app_database"] = f"error: {exc}"
    try:
        with sandbox.admin_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["sandbox_database"] = "ok"
    except Exception as exc:
        checks["sandbox_database"] = f"error: {exc}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"ok": healthy, **checks}, status=200 if healthy else 503)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """403 for a missing or wrong CSRF token, as JSON for API clients."""
    message = (
        "CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header "
        f"(GET / or /api/recipes first to receive the cookie). Reason: {reason}"
    )
    if request.path.startswith("/api/") or _wants_json(request):
        return JsonResponse({"error": message}, status=403)
    return HttpResponse(message, status=403, content_type="text/plain; charset=utf-8")
