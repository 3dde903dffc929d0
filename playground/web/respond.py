"""One way to answer a request, and one way to refuse it.

- `respond`: the full page, the page's htmx partial, or JSON for an API client, from one view.
- `Refusal`: why nothing was done (a status, a message or per-field errors, maybe Retry-After).
  Views raise it; `@refusals` turns it, and the known failures of a run (invalid input, the run
  allowance, a sandbox limit, a setup failure, a database that does not answer), into the client's
  rendering: JSON in DESIGN.md's shapes, or a page saying what went wrong.
- `bad_request`, `not_found`, `server_error`: Django's error handlers (see urls.py), so that API
  clients get JSON instead of an HTML page when the error happens outside a view.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.request import RawPostDataException
from django.shortcuts import render
from django.views import defaults
from sqlalchemy.exc import SQLAlchemyError

from playground.ops import tally
from playground.running import limits
from playground.running.apart import ApartError
from playground.running.runner import SetupError
from playground.sandbox import SandboxBusyError, SandboxLimitError
from recipes.validation import InvalidParams

logger = logging.getLogger(__name__)

RETRY_SOON = 5
"""Retry-After (s) when a database restarts or every run slot is taken: both pass within seconds."""
RETRY_FULL = 60
"""Retry-After (s) for a sandbox limit that does not say itself when a slot frees."""
JSON_BODY = 'Send the body as JSON, with the header "Content-Type: application/json".'

View = Callable[..., HttpResponse]
RefusalPage = Callable[..., "HttpResponse | None"]
"""`page(request, refusal, **view_kwargs)`: a view's own page for a refusal, or None for the plain one."""


class Refusal(Exception):
    """Nothing was done, and why: raised by views, rendered by `@refusals`."""

    def __init__(
        self,
        status: int,
        message: str = "",
        *,
        errors: Mapping[str, list[str]] | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message or "; ".join(m for ms in (errors or {}).values() for m in ms))
        self.status = status
        """The HTTP status: 400 invalid input, 404, 413, 415, 429, 503…"""
        self.message = message
        """One sentence for the person; empty when `errors` says it field by field."""
        self.errors = dict(errors or {})
        """Field name → messages, for input refused field by field."""
        self.retry_after = retry_after
        """Seconds after which trying again may work (sent as Retry-After)."""

    def to_json(self) -> dict[str, Any]:
        """DESIGN.md's shapes: `{"errors": {field: [...]}}`, else `{"error": "..."}`."""
        return {"errors": self.errors} if self.errors else {"error": self.message}


def wants_json(request: HttpRequest) -> bool:
    """A script asking for JSON (an htmx request asks for HTML, whatever its Accept says)."""
    return "application/json" in request.headers.get("Accept", "") and not getattr(request, "htmx", False)


def api_client(request: HttpRequest) -> bool:
    """Whoever should get errors as JSON: anything under /api/, or a client asking for JSON."""
    return request.path.startswith("/api/") or wants_json(request)


def respond(
    request: HttpRequest,
    template: str,
    context: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    *,
    data: Mapping[str, Any] | None = None,
    status: int = 200,
    partial: str | None = "results",
) -> HttpResponse:
    """`data` as JSON for a client asking for it, the page's `partial` for htmx, else the page.

    `context` may be a function, so that a JSON answer does not build what only the page shows.
    """
    if data is not None and wants_json(request):
        return JsonResponse(data, status=status)
    name = f"{template}#{partial}" if partial and getattr(request, "htmx", False) else template
    return render(request, name, context() if callable(context) else context, status=status)


def refuse(
    request: HttpRequest, refusal: Refusal, page: Callable[..., HttpResponse | None] | None = None
) -> HttpResponse:
    """The refusal in the client's rendering, with Retry-After when it has one; a 429 or 503 is
    counted for the operator's status page."""
    tally.count(refusal.status)
    if api_client(request):
        response = JsonResponse(refusal.to_json(), status=refusal.status)
    else:
        response = page(request, refusal) if page else None
        if response is None:
            name = "refusal.html#problem" if getattr(request, "htmx", False) else "refusal.html"
            response = render(request, name, {"refusal": refusal}, status=refusal.status)
    if refusal.retry_after is not None:
        response["Retry-After"] = str(refusal.retry_after)
    return response


UNAVAILABLE = (DatabaseError, SQLAlchemyError, psycopg.Error)
"""A database that does not answer (or answers with an error): 503, try again in a moment."""
KNOWN = (
    Refusal,
    InvalidParams,
    limits.TooManyRuns,
    SandboxLimitError,
    SetupError,
    ApartError,
    RequestDataTooBig,
    *UNAVAILABLE,
)
"""What a view may raise and still get a proper answer rather than a 500."""


def as_refusal(exc: BaseException) -> Refusal:
    """The refusal a known failure amounts to (one of `KNOWN`)."""
    match exc:
        case Refusal():
            return exc
        case InvalidParams():
            return Refusal(400, errors=exc.errors)
        case limits.TooManyRuns():
            return Refusal(429, str(exc), retry_after=max(1, math.ceil(exc.wait)))
        case SandboxLimitError():
            wait = exc.retry_after or (RETRY_SOON if isinstance(exc, SandboxBusyError) else RETRY_FULL)
            return Refusal(exc.status, str(exc), retry_after=wait if exc.status in (429, 503) else None)
        case SetupError():
            return Refusal(503, limits.explain_error(str(exc)) or "", retry_after=RETRY_SOON)
        case ApartError():
            return Refusal(503, str(exc), retry_after=RETRY_SOON)
        case RequestDataTooBig():
            return Refusal(413, too_large_message())
    # A database down or restarting: the request may work again in a moment.
    logger.warning("database unavailable: %s", exc)
    return Refusal(503, limits.unavailable_message(exc), retry_after=RETRY_SOON)


def refusals(page: RefusalPage | None = None) -> Callable[[View], View]:
    """Decorate a view: what it raises of `KNOWN` (and Http404 for API clients) is answered in kind.

    `page`, when given, renders the refusal for a browser as the view's own page (a recipe page
    listing the field errors, say); it is called with the view's keyword arguments.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except Http404 as exc:
                if not api_client(request):
                    raise  # Django's own 404 page
                refusal = Refusal(404, str(exc) or "not found")
            except KNOWN as exc:
                refusal = as_refusal(exc)
            return refuse(request, refusal, functools.partial(page, **kwargs) if page else None)

        return wrapped

    return decorate


def read_json(request: HttpRequest) -> Any:
    """The request's JSON body (`{}` when there is none), or a `Refusal` saying what is wrong."""
    declared = request.content_type or ""
    is_json = declared == "application/json" or declared.endswith("+json")
    if not is_json and (declared or request.META.get("CONTENT_LENGTH") not in (None, "", "0")):
        raise Refusal(415, JSON_BODY)
    try:
        raw = request.body
    except RequestDataTooBig:
        raise Refusal(413, too_large_message()) from None
    except RawPostDataException:  # already read as a form: it was not JSON
        raise Refusal(415, JSON_BODY) from None
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except RecursionError:  # json.loads recurses once per level of nesting
        raise Refusal(400, "The body nests too deeply to be read.") from None
    except ValueError:  # malformed JSON, bytes that are not UTF-8, a number of 5,000 digits
        raise Refusal(400, "the body must be a JSON object") from None


def too_large_message() -> str:
    return f"The request body is too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024} KB."


# --- Django's error handlers (urls.py) --------------------------------------------------------
def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400 and, for a body over DATA_UPLOAD_MAX_MEMORY_SIZE read by a middleware, 413."""
    if isinstance(exception, RequestDataTooBig):
        if api_client(request):
            return JsonResponse({"error": too_large_message()}, status=413)
        return HttpResponse(too_large_message(), status=413, content_type="text/plain; charset=utf-8")
    if api_client(request):
        return JsonResponse({"error": "bad request"}, status=400)
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if api_client(request):
        detail = exception.args[0] if exception.args and isinstance(exception.args[0], str) else ""
        return JsonResponse({"error": detail or f"no such page: {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """500, except for a database that does not answer outside any view (a middleware reading the
    session, say): that is the same 503 a view gives, so a restart never shows as a crash."""
    exc = sys.exc_info()[1]  # Django calls this handler while handling the exception
    if isinstance(exc, UNAVAILABLE):
        return refuse(request, as_refusal(exc))
    if api_client(request):
        return JsonResponse({"error": "internal server error: it was logged"}, status=500)
    return defaults.server_error(request)


_PLAIN_WORDS = {
    400: "bad request",
    403: "forbidden",
    404: "no such page",
    405: "method not allowed",
    413: "the request body is too large",
    500: "internal server error: it was logged",
}


class JsonErrorsMiddleware:
    """API clients get JSON for every error, including the ones Django answers before a view runs.

    With DEBUG on, an unmatched URL is answered by Django's technical 404 page, which never
    reaches `not_found`; a 405 from `require_POST` has no body at all.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        status = response.status_code
        if status < 400 or not api_client(request) or "json" in response.get("Content-Type", ""):
            return response
        words = _PLAIN_WORDS.get(status, "request refused")
        if status == 404:
            words = f"{words}: {request.path}"
        replaced = JsonResponse({"error": words}, status=status)
        for header in ("Allow", "Retry-After"):
            if header in response:
                replaced[header] = response[header]
        return replaced
