"""One view per action: each says what to do; `respond` picks the rendering, `@refusals` the refusal."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST
from sqlalchemy import text

import recipes
from playground import sandbox
from playground.running import comparing, joined, limits, service
from playground.running.deadline import client_of
from playground.sandbox import health, servers
from playground.web.charts import comparison_rows
from playground.web.forms import RunForm
from playground.web.recipe_page import (
    link_form,
    page_context,
    recipe_or_404,
    refused_page,
    run,
    shown,
    validate_for_compare,
)
from playground.web.respond import RETRY_SOON, Refusal, api_client, read_json, refusals, respond, wants_json
from playground.web.tracks import track_cards
from playground.web.versions import asked_version, shown_version


@require_GET
@ensure_csrf_cookie
@refusals()
def shelf(request: HttpRequest) -> HttpResponse:
    return render(request, "shelf.html", {"sections": recipes.by_section(), "cards": track_cards(request)})


@require_GET
@ensure_csrf_cookie
@refusals()
def recipe_page(request: HttpRequest, slug: str) -> HttpResponse:
    recipe = recipe_or_404(slug)
    form = link_form(recipe, request.GET, version=joined.version(request.session))
    return render(request, "recipe.html", page_context(request, recipe, form))


@require_POST
@refusals(refused_page)
def recipe_run(request: HttpRequest, slug: str) -> HttpResponse:
    recipe = recipe_or_404(slug)
    chosen = recipe.validate(request.POST, form=True)
    version = asked_version(request.POST)
    result = run(request, recipe, chosen, version)
    form = RunForm(recipe, {**shown(chosen), **shown_version(version)})
    context = page_context(request, recipe, form, result=result)
    return respond(request, "recipe.html", context, data=result.to_json())


@require_POST
@refusals(refused_page)
def recipe_compare(request: HttpRequest, slug: str) -> HttpResponse:
    recipe = recipe_or_404(slug)
    chosen = validate_for_compare(recipe, request.POST)
    version = asked_version(request.POST)
    limits.spend_runs(request.session, len(recipe.variants))
    gone = client_of(request.META)
    results = comparing.compare(request.session, recipe, chosen.params, client_gone=gone, version=version)
    ids = ",".join(str(r.run_id) for r in results if r.run_id)
    form = RunForm(recipe, {**shown(chosen), **shown_version(version)})
    title = f"All variants, same parameters, on PostgreSQL {results[0].server_version}" if results else None
    context = page_context(
        request, recipe, form, comparison=comparison_rows(results), compared_ids=ids, comparison_title=title
    )
    data = {"recipe": recipe.slug, "runs": [r.to_json() for r in results]}
    return respond(request, "recipe.html", context, data=data)


@require_GET
@ensure_csrf_cookie
@refusals()
def api_recipes(request: HttpRequest) -> HttpResponse:
    offered = {"versions": sandbox.versions(), "default_version": sandbox.default_version()}
    return JsonResponse({"recipes": [r.to_json() for r in recipes.REGISTRY.values()], **offered})


@require_POST
@refusals()
def api_run(request: HttpRequest, slug: str) -> HttpResponse:
    recipe = recipe_or_404(slug)
    body = read_json(request)
    chosen = recipe.validate(_run_input(body))
    return JsonResponse(run(request, recipe, chosen, asked_version(body)).to_json())


def _run_input(body: Any) -> dict[str, Any]:
    """`{"variant": "...", "params": {...}, "pg": 16}` as the one mapping `Recipe.validate` reads
    (`pg`, the version, is read apart: see playground.web.versions)."""
    if not isinstance(body, dict) or not isinstance(body.get("params", {}), dict):
        raise Refusal(400, 'expected {"variant": "...", "params": {...}}')
    params = body.get("params", {})
    if "variant" in params:  # the variant is named beside the parameters, not among them
        raise Refusal(400, errors={"params": ["unknown parameter 'variant'"]})
    return {**params, **({"variant": body["variant"]} if "variant" in body else {})}


@require_POST
@refusals()
def sandbox_reset(request: HttpRequest) -> HttpResponse:
    done = service.reset_sandbox(request.session)
    message = (
        "Sandbox reset: every table is gone and will be re-seeded on the next run."
        if done
        else ("Nothing to reset yet: this session has no sandbox.")
    )
    if wants_json(request):
        return JsonResponse({"ok": True, "reset": done, "message": message})
    if request.htmx:
        return render(request, "_components.html#flash", {"message": message})
    return redirect(
        request.POST.get("next") if str(request.POST.get("next", "")).startswith("/recipes/") else "shelf"
    )


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The container's probe: 503 when the app database or `main` does not answer. Every other
    sandbox server's state is reported beside them but does not fail the probe: while one is down
    only its own sessions wait, so restarting this container would not help them."""
    checks: dict[str, Any] = {}
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
    main = health.ServerState(servers.MAIN, sandbox.default_version(), health.UP if healthy else health.DOWN)
    others = health.states_of(servers.configured()[1:])
    listed = [state.to_json() for state in (main, *others)]
    response = JsonResponse(
        {"ok": healthy, **checks, "sandbox_servers": listed}, status=200 if healthy else 503
    )
    if not healthy:
        response["Retry-After"] = str(RETRY_SOON)
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """403 for a missing or wrong CSRF token, as JSON for API clients."""
    message = (
        "CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header "
        f"(GET / or /api/recipes first to receive the cookie). Reason: {reason}"
    )
    if api_client(request):
        return JsonResponse({"error": message}, status=403)
    return HttpResponse(message, status=403, content_type="text/plain; charset=utf-8")
