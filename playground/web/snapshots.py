"""Frozen snapshots: a read-only, unguessable link to one stored run, for pasting into a chat.

A share link only pre-fills a recipe's form; a snapshot shows the result as it was (rows,
statements, plan, figures), and still does after the run's sandbox was reaped.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from playground.models import Snapshot
from playground.running import service
from playground.web.recipe_page import recipe_or_404
from playground.web.respond import refusals, respond, wants_json
from recipes.results import result_from_json


@require_POST
@refusals()
def run_snapshot(request: HttpRequest, run_id: int) -> HttpResponse:
    """Freeze one of this session's runs (never another session's) and go to its link."""
    stored = service.stored_run(request.session, run_id)
    if stored is None:
        raise Http404("no such run in this session")
    frozen = Snapshot.objects.create(
        token=secrets.token_urlsafe(32), recipe=stored.recipe, result=stored.result, ran_at=stored.created_at
    )
    url = reverse("snapshot", args=[frozen.token])
    if wants_json(request):
        return JsonResponse({"url": request.build_absolute_uri(url)}, status=201)
    return redirect(url)


@require_GET
@refusals()
def snapshot(request: HttpRequest, token: str) -> HttpResponse:
    frozen = Snapshot.objects.filter(token=token).first()
    if frozen is None:
        raise Http404("no snapshot has this link")
    recipe = recipe_or_404(frozen.recipe)
    result = replace(result_from_json(frozen.result), run_id=None)  # no links into a session's history
    context = {"recipe": recipe, "result": result, "frozen": frozen}
    return respond(request, "snapshot.html", context, data=frozen.result, partial=None)
