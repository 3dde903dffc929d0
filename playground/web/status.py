"""The operator's status page: the figures an instance is sized by, and "reap now".

Staff only, like the admin it belongs to: anyone else is sent to the admin's sign-in page (a JSON
client gets 403, or 401 when not signed in). The page reads the app database and the sandbox
server's catalog; while either does not answer it says so with a 503, like every other page.
"""

from __future__ import annotations

import functools

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from playground.ops import actions, figures
from playground.web.respond import Refusal, api_client, refusals, respond


def staff_only(view):
    """Let active staff through; send anyone else to the admin's sign-in page."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if user.is_active and user.is_staff:
            return view(request, *args, **kwargs)
        if api_client(request):
            signed_in = user.is_authenticated
            raise Refusal(403 if signed_in else 401, "staff only: sign in with a staff account")
        return redirect(f"{reverse('admin:login')}?next={request.path}")

    return wrapped


@require_GET
@refusals()
@staff_only
def status(request: HttpRequest) -> HttpResponse:
    now = figures.current()
    context = {**admin.site.each_context(request), "title": "Status", "status": now}
    return respond(request, "admin/playground_status.html", context, data=now.to_json(), partial=None)


@require_POST
@refusals()
@staff_only
def reap_now(request: HttpRequest) -> HttpResponse:
    done = actions.reap_now(request.user)
    dropped = done.detail["dropped"]
    if api_client(request):
        return JsonResponse({"dropped": dropped})
    messages.success(request, f"Reaped now: {len(dropped)} idle sandbox(es) dropped.")
    return redirect("operator-status")
