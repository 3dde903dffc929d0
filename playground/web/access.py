"""Who reaches what: the health probe before anything else, and an optional login wall.

`HealthCheckMiddleware` sits first so that an orchestrator's probe is answered whatever Host
header it sends and over plain HTTP, without touching sessions. `LoginRequiredMiddleware` is
always installed and does nothing unless `PLAYGROUND["REQUIRE_LOGIN"]` is on; then every page and
API needs a signed-in user: a browser is sent to the login page, an htmx request is told to go
there, a JSON client gets a 401 with a JSON body.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect

HEALTH_PATH = "/healthz"


class HealthCheckMiddleware:
    """Answer GET /healthz directly: no host validation, HTTPS redirect, session or login."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == HEALTH_PATH:
            from playground.web.views import healthz

            return healthz(request)
        return self.get_response(request)


def login_required_on() -> bool:
    return bool(settings.PLAYGROUND.get("REQUIRE_LOGIN"))


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's login wall, switched by a setting and answering each kind of client in kind."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not login_required_on():
            return None
        from playground.web.respond import UNAVAILABLE, as_refusal, refuse

        try:  # reading request.user reads the session: the app database may not answer
            return super().process_view(request, view_func, view_args, view_kwargs)
        except UNAVAILABLE as exc:
            return refuse(request, as_refusal(exc))

    def handle_no_permission(self, request, view_func):
        login_url = resolve_url(self.get_login_url(view_func))
        if getattr(request, "htmx", False):
            # A redirect would be followed by the XHR and the login page swapped into the results.
            page = request.htmx.current_url_abs_path or "/"
            return HttpResponseClientRedirect(f"{login_url}?{urlencode({'next': page})}")
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            return JsonResponse(
                {"error": "authentication required: sign in first", "login_url": login_url}, status=401
            )
        return super().handle_no_permission(request, view_func)


def login_context(request: HttpRequest) -> dict[str, bool]:
    """Templates show the sign-out button only when logging in is required."""
    return {"login_required": login_required_on()}
