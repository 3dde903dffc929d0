"""The SQL scratchpad: the sandbox's tables, free SQL, each statement with its own result."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from playground import sandbox
from playground.running import scratch
from playground.web.respond import Refusal, read_json, refusals, respond, wants_json
from playground.web.versions import asked_version
from recipes import scratchpad
from recipes.results import RunResult

PLACEHOLDER = "SELECT 1 AS one"


def sql_context(request: HttpRequest, sql: str, version: int | None = None, **extra: Any) -> dict[str, Any]:
    """What sql.html needs: the text in the editor, the versions offered and the one picked,
    that sandbox's tables, the run the SQL came from (to compare with), and what ran."""
    data = request.POST if request.method == "POST" else request.GET
    origin = str(data.get("from", ""))
    return {
        "sql": sql,
        "origin": int(origin) if origin.isdigit() else None,
        "versions": sandbox.versions(),
        "pg": version or sandbox.default_version(),
        "tables": lambda: scratch.tables(request.session, version),
        **extra,
    }


def compare_url(origin: int | None, result: RunResult) -> str | None:
    """The diff of the run the SQL came from and the scratchpad's run of it."""
    if origin is None or result.run_id is None:
        return None
    return f"{reverse('run-diff')}?a={origin}&b={result.run_id}"


@require_GET
@ensure_csrf_cookie
@refusals()
def sql_page(request: HttpRequest) -> HttpResponse:
    sql = str(request.GET.get("sql", "")) or PLACEHOLDER
    version = asked_version(request.GET)
    data = None
    if wants_json(request):
        data = {"tables": [t.to_json() for t in scratch.tables(request.session, version)]}
    return respond(request, "sql.html", lambda: sql_context(request, sql, version), data=data, partial=None)


def refused_sql(request: HttpRequest, refusal: Refusal) -> HttpResponse:
    """The scratchpad (its results partial for htmx) saying why nothing ran, the text kept."""
    sql = str(request.POST.get("sql", ""))
    problems = [m for messages in refusal.errors.values() for m in messages] or [refusal.message]
    context = sql_context(
        request, sql, problems=problems
    )  # the default version: the asked one may be the problem
    return respond(request, "sql.html", context, status=refusal.status)


@require_POST
@refusals(refused_sql)
def sql_run(request: HttpRequest) -> HttpResponse:
    """Run the posted SQL (a form field `sql`, or JSON `{"sql": "...", "pg": 16}`), on the version
    `pg` asks for (default: `main`'s)."""
    if request.content_type == "application/json":
        body = read_json(request)
        sql = body.get("sql") if isinstance(body, dict) else None
        if not isinstance(sql, str):
            raise Refusal(400, errors={"sql": ['expected {"sql": "..."}']})
        version = asked_version(body)
    else:
        sql = str(request.POST.get("sql", ""))
        version = asked_version(request.POST)
    result = scratch.run_sql(request.session, sql, version)
    context = sql_context(request, sql, version, result=result, statements=statement_results(result))
    context["compare_url"] = compare_url(context["origin"], result)
    data = {**result.to_json(), "compare_url": context["compare_url"]}
    return respond(request, "sql.html", context, data=data)


def statement_results(result: RunResult) -> list[dict[str, Any]]:
    """Each statement's own result, as the scratchpad recipe recorded it."""
    return list(result.metrics.get("results", []))


def reopened(request: HttpRequest, result: RunResult, stored: Any) -> dict[str, Any]:
    """The context of a stored scratchpad run, opened from the history."""
    sql = str(result.params.get("sql", ""))
    return sql_context(request, sql, result=result, statements=statement_results(result), reopened=stored)


SLUG = scratchpad.SLUG
