"""Compare versions: one variant with one set of parameters on every PostgreSQL version offered,
the figures in one table and the plans side by side with what changed between them.

Both runs are kept in the session's history, so the comparison is the run diff of
playground.web.explore (the same sentences, the same plan panes) with one figures table above.
"""

from __future__ import annotations

from dataclasses import replace

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from playground import sandbox
from playground.running import comparing, limits, service
from playground.running.deadline import client_of
from playground.web.charts import comparison_rows
from playground.web.explore import run_changes, run_side
from playground.web.forms import RunForm
from playground.web.recipe_page import page_context, recipe_or_404, refused_page, shown
from playground.web.respond import Refusal, refusals, respond
from playground.web.versions import shown_version
from recipes.results import RunResult


@require_POST
@refusals(refused_page)
def recipe_versions(request: HttpRequest, slug: str) -> HttpResponse:
    recipe = recipe_or_404(slug)
    chosen = recipe.validate(request.POST, form=True)
    offered = sandbox.versions()
    if len(offered) < 2:
        raise Refusal(400, "Only one PostgreSQL version is offered here: there is nothing to compare.")
    limits.spend_runs(request.session, len(offered))
    results = comparing.compare_versions(
        request.session, recipe, chosen.variant, chosen.params, client_gone=client_of(request.META)
    )
    stored = [service.stored_run(request.session, r.run_id) for r in results]
    sides = [
        {**run_side(run), "name": _version_label(result)} for run, result in zip(stored, results, strict=True)
    ]
    changes = run_changes(sides[0], sides[-1])
    versions = {
        "rows": [
            replace(row, variant=_version_label(r))
            for row, r in zip(comparison_rows(results), results, strict=True)
        ],
        "sides": sides,
        "changes": changes,
        "diff_ids": (stored[0].pk, stored[-1].pk),
    }
    form = RunForm(recipe, {**shown(chosen), **shown_version(None)})
    context = page_context(request, recipe, form, versions=versions)
    data = {
        "recipe": recipe.slug,
        "variant": chosen.variant,
        "params": dict(chosen.params),
        "runs": [r.to_json() for r in results],
        "changes": changes,
    }
    return respond(request, "recipe.html", context, data=data)


def _version_label(result: RunResult) -> str:
    return f"PostgreSQL {result.server_version}"
