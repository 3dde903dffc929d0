"""Signing in with the company's OpenID Connect provider (Keycloak, Entra ID, Okta, Google…).

mozilla-django-oidc does the protocol (authorization code flow with nonce, state and PKCE, the
ID token's signature checked against the provider's keys); this module adds what the playground
needs around it:

- Endpoints come from the provider's discovery document (`OIDC_ISSUER` +
  `/.well-known/openid-configuration`), fetched when someone first signs in and kept an hour in
  each process, so that only the issuer is configured. Nothing asks the provider on a request
  of someone already signed in, so a provider down stops new sign-ins, nothing else.
- Who may sign in: an email the provider does not call unverified, and, when configured, an
  email domain in OIDC_ALLOWED_EMAIL_DOMAINS or a group in OIDC_ALLOWED_GROUPS (either is
  enough). Anyone else is told why on a 403 page and no account is made.
- The views answer 404 while OIDC is not configured, and 503 (not 500) while the provider does
  not answer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from playground.web.respond import Refusal, refusals, refuse

log = logging.getLogger(__name__)

ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
"""mozilla-django-oidc's endpoint settings → their keys in a discovery document."""
DISCOVERY_SECONDS = 3600
REFUSAL_KEY = "oidc_refusal"
"""Request attribute: why the provider's answer was refused, for the failure page."""


def configured() -> bool:
    return bool(getattr(settings, "OIDC_RP_CLIENT_ID", ""))


_discovered: dict[str, tuple[float, dict[str, Any]]] = {}
_discovery_lock = threading.Lock()


def discovery(issuer: str) -> dict[str, Any]:
    """The provider's discovery document, fetched at most once an hour per process."""
    with _discovery_lock:
        found = _discovered.get(issuer)
        if found is not None and time.monotonic() - found[0] < DISCOVERY_SECONDS:
            return found[1]
    response = requests.get(
        issuer.rstrip("/") + "/.well-known/openid-configuration",
        timeout=getattr(settings, "OIDC_TIMEOUT", 10),
    )
    response.raise_for_status()
    document = response.json()
    if document.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
        raise requests.RequestException(
            f"the discovery document names another issuer: {document.get('issuer')}"
        )
    with _discovery_lock:
        _discovered[issuer] = (time.monotonic(), document)
    return document


def get_setting(attr: str, *default: Any) -> Any:
    """A mozilla-django-oidc setting: an endpoint not set explicitly comes from discovery."""
    if attr in ENDPOINTS and not getattr(settings, attr, None):
        return discovery(settings.OIDC_ISSUER)[ENDPOINTS[attr]]
    if default:
        return getattr(settings, attr, default[0])
    return getattr(settings, attr)


def _endpoint(attr: str) -> property:
    return property(lambda self: get_setting(attr))


class CompanyBackend(OIDCAuthenticationBackend):
    """The library's backend with endpoints read when needed, and the company's rules on who
    may sign in."""

    get_settings = staticmethod(get_setting)
    OIDC_OP_TOKEN_ENDPOINT = _endpoint("OIDC_OP_TOKEN_ENDPOINT")
    OIDC_OP_USER_ENDPOINT = _endpoint("OIDC_OP_USER_ENDPOINT")
    OIDC_OP_JWKS_ENDPOINT = _endpoint("OIDC_OP_JWKS_ENDPOINT")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Unlike the library's, reads no endpoint: Django makes a backend on every request of a
        # signed-in person (to load their account), which must not need the provider.
        from django.contrib.auth import get_user_model

        self.OIDC_RP_CLIENT_ID = get_setting("OIDC_RP_CLIENT_ID")
        self.OIDC_RP_CLIENT_SECRET = get_setting("OIDC_RP_CLIENT_SECRET")
        self.OIDC_RP_SIGN_ALGO = get_setting("OIDC_RP_SIGN_ALGO", "RS256")
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        reason = refusal_reason(claims)
        if reason and getattr(self, "request", None) is not None:
            setattr(self.request, REFUSAL_KEY, reason)
        return reason is None

    def create_user(self, claims: dict[str, Any]):
        return self.UserModel.objects.create_user(self.get_username(claims), email=claims["email"])

    def get_username(self, claims: dict[str, Any]) -> str:
        """The email address: unique, readable on the admin's pages and in the header."""
        return claims["email"][:150]


def refusal_reason(claims: dict[str, Any]) -> str | None:
    """Why these claims may not sign in, or None when they may."""
    email = str(claims.get("email") or "")
    if "@" not in email:
        return "The identity provider did not give an email address for this account."
    if claims.get("email_verified") is False:
        return f"The identity provider has not verified {email}."
    domains = [d.lower() for d in settings.PLAYGROUND["OIDC_ALLOWED_EMAIL_DOMAINS"]]
    groups = set(settings.PLAYGROUND["OIDC_ALLOWED_GROUPS"])
    if not domains and not groups:
        return None
    if email.rsplit("@", 1)[1].lower() in domains:
        return None
    held = claims.get(settings.PLAYGROUND["OIDC_GROUPS_CLAIM"]) or []
    if groups and groups.intersection(held if isinstance(held, list) else [held]):
        return None
    return f"{email} may not sign in here: ask the playground's operator."


class CompanyCallback(OIDCAuthenticationCallbackView):
    """The provider sends people back here; a refused one is told why (403), not sent in a loop."""

    get_settings = staticmethod(get_setting)

    def login_failure(self) -> HttpResponse:
        reason = getattr(self.request, REFUSAL_KEY, None)
        if reason is None:
            reason = "Signing in with the identity provider did not work. Try again."
        context = {"reason": reason, "provider": settings.PLAYGROUND["OIDC_PROVIDER_NAME"]}
        return render(self.request, "registration/oidc_refused.html", context, status=403)


class CompanyAuthenticate(OIDCAuthenticationRequestView):
    """Sends the browser to the provider's sign-in page."""

    get_settings = staticmethod(get_setting)


def _guarded(view_class: type) -> Any:
    view = view_class.as_view()

    @login_not_required
    @refusals()  # the session lives in the app database, which may not answer
    def guarded(request: HttpRequest) -> HttpResponse:
        if not configured():
            raise Http404("signing in with an identity provider is not configured here")
        try:
            return view(request)
        except requests.RequestException as exc:
            log.warning("the identity provider did not answer: %s", exc)
            message = "The identity provider is not answering right now. Try again in a minute."
            return refuse(request, Refusal(503, message, retry_after=30))

    return guarded


authenticate = _guarded(CompanyAuthenticate)
callback = _guarded(CompanyCallback)
