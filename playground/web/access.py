"""Who reaches what: the health probe before anything else, who the client is, and an optional
login wall.

`HealthCheckMiddleware` sits first so that an orchestrator's probe is answered whatever Host
header it sends and over plain HTTP, without touching sessions. `ClientAddressMiddleware` tells
the sandbox layer which client a request comes from (each address may hold only so many
sandboxes). `PersonMiddleware` points a signed-in session at the person's sandbox, whichever
browser it is. `LoginRequiredMiddleware` is always installed and does nothing unless
`PLAYGROUND["REQUIRE_LOGIN"]` is on; then every page and API needs a signed-in user: a browser is
sent to the login page, an htmx request is told to go there, a JSON client gets a 401 with a JSON
body.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth import SESSION_KEY as USER_KEY
from django.contrib.auth import middleware as auth_middleware
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect

from playground.conf import setting
from playground.running import people
from playground.sandbox import client_key, current_client

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


def client_address(request: HttpRequest) -> str:
    """The address of the client: the peer, or behind trusted proxies the one they forwarded.

    X-Forwarded-For is read from the right (the hop nearest to us) leftwards, past every proxy
    in PLAYGROUND["TRUSTED_PROXIES"]; the first address that is not one is the client. Anything a
    client writes into the header itself lies further left and is never reached, and the header
    is ignored altogether unless the peer itself is a trusted proxy.
    """
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    chain = [*hops, request.META.get("REMOTE_ADDR", "")]
    trusted = setting("TRUSTED_PROXIES")
    for address in reversed(chain):
        if not _is_trusted(address, trusted):
            return address
    return chain[0]  # every hop is a trusted proxy: the farthest one is the client


def _is_trusted(address: str, trusted: list[str]) -> bool:
    if "*" in trusted:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:  # a malformed entry trusts nobody
            continue
    return False


class ClientAddressMiddleware:
    """Name the request's client (see `client_address`) to the sandbox layer while it is served."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = current_client.set(client_key(client_address(request)))
        try:
            return self.get_response(request)
        finally:
            current_client.reset(token)


class PersonMiddleware:
    """Before a signed-in session's request is served, point it at the person's sandbox and
    progress (see `playground.running.people`: they follow the person from browser to browser)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from playground.web.respond import UNAVAILABLE

        try:
            user_id = request.session.get(USER_KEY)
            if user_id is not None:
                people.follow(request.session, user_id)
        except UNAVAILABLE:
            pass  # the app database is not answering: the view says so if it needs it
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


def login_context(request: HttpRequest) -> dict[str, object]:
    """The header offers Sign out to anyone signed in (a proxy's header: who it is) and Sign in
    when an identity provider is configured; the sign-in page shows the provider's button."""
    from playground.web.oidc import configured

    signed_in_as, by_proxy = _person(request)
    return {
        "login_required": login_required_on(),
        "oidc_provider": setting("OIDC_PROVIDER_NAME") if configured() else None,
        "signed_in_as": signed_in_as,
        # Signed in by a proxy's header, signing out here would last until the next request.
        "proxy_signed_in": by_proxy,
    }


def _person(request: HttpRequest) -> tuple[str | None, bool]:
    """Who is signed in (None: nobody), and whether a proxy's header signed them in."""
    from playground.web.respond import UNAVAILABLE

    try:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None, False
        backend = request.session.get(BACKEND_SESSION_KEY, "")
    except UNAVAILABLE:  # the app database is down: the page saying so has no one to name
        return None, False
    return user.get_username(), backend.endswith(".ProxyUserBackend")
