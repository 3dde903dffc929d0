"""Signing in by a reverse proxy's word: oauth2-proxy, Authelia, an ingress with SSO.

Such a proxy signs people in with the company's identity provider and passes who they are in a
request header (`X-Forwarded-User`, `Remote-User`). Anyone can write that header, so it is
believed only from the proxies the deployment names in PLAYGROUND_PROXY_ADDRESSES, judged by the
address of the TCP peer itself (never by X-Forwarded-For, which the client writes too). From any
other address the header is removed before anything reads it, and the request is served as if it
had not been sent: a Django account keeps working on a direct path.

Off unless PLAYGROUND_PROXY_USER_HEADER names a header. "*" is not accepted as an address: a
header believed from anyone signs anyone in as anyone.
"""

from __future__ import annotations

import ipaddress
import logging

from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.http import HttpRequest, HttpResponse

from playground.conf import setting

log = logging.getLogger(__name__)


def meta_key(header: str) -> str:
    """The WSGI environ key of an HTTP header: `X-Forwarded-User` → `HTTP_X_FORWARDED_USER`."""
    return "HTTP_" + header.strip().upper().replace("-", "_")


def proxy_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The named proxies as networks; "*" or a typo names nobody."""
    found = []
    for entry in setting("PROXY_ADDRESSES"):
        try:
            found.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return found


def from_proxy(request: HttpRequest) -> bool:
    """Whether the request's TCP peer is one of the named proxies (addresses or networks)."""
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in proxy_networks())


class ProxyUserMiddleware(RemoteUserMiddleware):
    """Django's remote-user sign-in, reading the configured header from the named proxies only.

    A session signed in this way is signed out when a request from the proxy no longer carries
    the header (Django's rule for remote users); sessions signed in otherwise are left alone.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        if setting("PROXY_USER_HEADER") and not proxy_networks():
            log.warning(
                "PLAYGROUND_PROXY_USER_HEADER is set but PLAYGROUND_PROXY_ADDRESSES names no proxy "
                "(%r): the header is believed from nobody, so nobody is signed in by it",
                setting("PROXY_ADDRESSES"),
            )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = setting("PROXY_USER_HEADER")
        if header:
            self.header = meta_key(header)
            email = setting("PROXY_EMAIL_HEADER")
            if not from_proxy(request):
                request.META.pop(self.header, None)
                if email:
                    request.META.pop(meta_key(email), None)
            else:
                from playground.web.respond import UNAVAILABLE, as_refusal, refuse

                if not request.META.get(self.header, "").strip():
                    request.META.pop(self.header, None)  # an empty header names nobody
                try:  # signing in reads and writes the session: the app database may not answer
                    self.process_request(request)
                except UNAVAILABLE as exc:
                    return refuse(request, as_refusal(exc))
        return self.get_response(request)


class ProxyUserBackend(RemoteUserBackend):
    """Makes the account of someone the proxy vouches for on their first visit, and keeps its
    email address as the proxy says it (PLAYGROUND_PROXY_EMAIL_HEADER, when named)."""

    create_unknown_user = True

    def configure_user(self, request, user, created=True):
        header = setting("PROXY_EMAIL_HEADER")
        email = request.META.get(meta_key(header), "").strip() if header and request else ""
        if email and user.email != email:
            user.email = email
            user.save(update_fields=["email"])
        return user
