"""Workshop rooms: make one, host it (the live board, pushing a step), join it, follow it.

The host page sits behind a long random token in its link (and, with sign-in on, only its
maker may open it); participants hold only the short join code, so they can neither see the
board nor push a step. Every page here has a plain link that works without JS; with htmx the
host's board and the participant's page poll every few seconds.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

import recipes
from playground import sandbox
from playground.models import Member, Room
from playground.running import room_sandboxes, rooms
from playground.sandbox import current_client
from playground.web.access import client_address
from playground.web.respond import UNAVAILABLE, Refusal, read_json, refusals, respond, wants_json
from playground.web.tracks import available
from playground.web.versions import FIELD, asked_version
from recipes.validation import InvalidParams

POLL_SECONDS = 2
NAME_LENGTH = 40


def form_data(request: HttpRequest) -> Any:
    """The request's fields: its JSON body, or its form."""
    if request.content_type == "application/json":
        body = read_json(request)
        if not isinstance(body, dict):
            raise Refusal(400, "the body must be a JSON object")
        return body
    return request.POST


def _list(data: Any, key: str) -> list[str]:
    if isinstance(data, QueryDict):
        return [v for v in data.getlist(key) if v]
    value = data.get(key) or []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def text_field(data: Any, key: str) -> str:
    value = data.get(key)
    return value.strip() if isinstance(value, str) else ""


# --- making a room ------------------------------------------------------------------------------
def _new_context() -> dict[str, Any]:
    newest_first = sandbox.versions()[::-1]  # as a run form lists them
    offered = {"versions": newest_first, "default_version": sandbox.default_version()}
    return {"tracks": list(available().values()), "sections": recipes.by_section(), **offered}


def _create(request: HttpRequest, data: Any) -> Room:
    """The room the form asks for, or a `Refusal` naming each field that is wrong."""
    name, track, chosen = text_field(data, "name"), text_field(data, "track"), _list(data, "recipes")
    errors: dict[str, list[str]] = {}
    if not name or len(name) > 100:
        errors["name"] = ["Give the room a name of at most 100 characters."]
    if track:
        if track not in available():
            errors["track"] = [f"There is no track '{track}'."]
        else:
            chosen = list(dict.fromkeys(s.recipe.slug for s in available()[track].steps))
    elif not chosen:
        errors["recipes"] = ["Choose a track or at least one recipe."]
    elif unknown := [s for s in chosen if recipes.get(s) is None]:
        errors["recipes"] = [f"Unknown recipes: {', '.join(unknown)}."]
    version = None
    try:
        version = asked_version(data)
    except InvalidParams as exc:
        errors |= exc.errors
    if errors:
        raise Refusal(400, errors=errors)
    return rooms.create(name, track=track, recipes=chosen, owner=request.user, version=version)


def _refused_new(request: HttpRequest, refusal: Refusal) -> HttpResponse:
    context = {**_new_context(), "errors": refusal.errors, "problem": refusal.message, "values": request.POST}
    return respond(request, "room_new.html", context, status=refusal.status, partial=None)


@require_http_methods(["GET", "POST"])
@ensure_csrf_cookie
@refusals(_refused_new)
def room_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        room = _create(request, form_data(request))
        if wants_json(request):
            return JsonResponse(room_json(request, room, host=True), status=201)
        return redirect("room-host", room.host_token)
    data = {"tracks": list(available()), "recipes": [r.slug for _, rs in recipes.by_section() for r in rs]}
    return respond(request, "room_new.html", _new_context, data=data, partial=None)


def room_json(request: HttpRequest, room: Room, *, host: bool = False) -> dict[str, Any]:
    """What anyone in the room may know; the host links only for the host."""
    target = step_target(room)
    data = {
        "name": room.name,
        "code": room.code,
        "join_url": request.build_absolute_uri(reverse("room", args=[room.code])),
        "track": room.track or None,
        "recipes": room.recipes,
        "version": room.version or sandbox.default_version(),
        "step": {**room.step, "url": target[0], "label": target[1]} if target else None,
        "step_version": room.step_version,
        "expires_at": room.expires_at.isoformat(),
    }
    if host:
        data["host_url"] = request.build_absolute_uri(reverse("room-host", args=[room.host_token]))
    return data


def step_target(room: Room) -> tuple[str, str] | None:
    """(url, label) of the step pushed last, or None before the first push."""
    step = room.step
    if step.get("track"):
        track = available().get(step["track"])
        found = track.step(step["number"]) if track else None
        if found is None:
            return None
        return reverse("track-step", args=[track.slug, found.number]), f"Step {found.number}: {found.title}"
    recipe = recipes.get(step.get("recipe", ""))
    if recipe is None:
        return None
    query = step.get("query", "")
    with_version = "&".join(q for q in (query, f"{FIELD}={room.version}" if room.version else "") if q)
    url = reverse("recipe", args=[recipe.slug]) + (f"?{with_version}" if with_version else "")
    return url, recipe.title + (f" ({query.replace('&', ', ')})" if query else "")


# --- joining and following ----------------------------------------------------------------------
def _client(request: HttpRequest) -> str:
    return current_client.get() or client_address(request)


def _entered(request: HttpRequest, code: str) -> tuple[Room, Member | None]:
    """The open room of this code and this session's member in it; guessing is rate limited."""
    room = rooms.find(code)
    member = rooms.member_of(request.session, room) if room else None
    if member is not None:
        return room, member
    client = _client(request)
    if rooms.join_refused(client):
        raise Refusal(
            429, "Too many wrong room codes from here: wait a minute.", retry_after=rooms.retry_after()
        )
    if room is None:
        rooms.note_miss(client)
        raise Http404("no open room has this code")
    return room, None


def _refused_join(request: HttpRequest, refusal: Refusal, code: str = "") -> HttpResponse:
    context = {
        "code": code or text_field(request.POST, "code"),
        "values": request.POST,
        "errors": refusal.errors,
    }
    context["problem"] = refusal.message
    return respond(request, "room_join.html", context, status=refusal.status, partial=None)


@require_http_methods(["GET", "POST"])
@ensure_csrf_cookie
@refusals(_refused_join)
def room_join(request: HttpRequest) -> HttpResponse:
    """GET: the form (code and name). POST: join the room as `name`."""
    if request.method == "GET":
        code = rooms.normal_code(request.GET.get("code", ""))
        return respond(request, "room_join.html", {"code": code}, data={"code": code or None}, partial=None)
    data = form_data(request)
    room, _ = _entered(request, text_field(data, "code"))
    name = text_field(data, "name")
    if not name or len(name) > NAME_LENGTH:
        raise Refusal(400, errors={"name": [f"Type a name of 1 to {NAME_LENGTH} characters."]})
    member = rooms.join(request.session, room, name)
    room_sandboxes.take_prepared(request.session, room, member)
    if wants_json(request):
        return JsonResponse({**room_json(request, room), "member": member.name}, status=201)
    return redirect("room", room.code)


def room_bar(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the room this session joined last, whose bar on every page follows the
    steps its trainer pushes (nothing when the session cannot be read: the page says why)."""
    try:
        joined = request.session.get(rooms.ROOMS_KEY) or {}
    except UNAVAILABLE:
        return {}
    return {"room_bar": next(reversed(joined))} if joined else {}


def _bar_poll(request: HttpRequest, code: str) -> HttpResponse:
    """The bar's poll: go to a newly pushed step, else nothing; 286 (htmx: stop polling) once the
    room is gone."""
    try:
        room, member = _entered(request, code)
    except Http404:
        request.session[rooms.ROOMS_KEY] = {
            k: v for k, v in request.session.get(rooms.ROOMS_KEY, {}).items() if k != code
        }
        return HttpResponse(status=286)
    if member is not None and room.step_version > member.step_version and step_target(room):
        return HttpResponseClientRedirect(reverse("room-go", args=[room.code]))
    return HttpResponse(status=204)


@require_GET
@ensure_csrf_cookie
@refusals(_refused_join)
def room_page(request: HttpRequest, code: str) -> HttpResponse:
    """A participant's page: the step to open. Polled by htmx, which moves on when a step is pushed."""
    if request.GET.get("bar") and getattr(request, "htmx", False):
        return _bar_poll(request, code)
    try:
        room, member = _entered(request, code)
    except Http404:
        if getattr(request, "htmx", False):
            return HttpResponse(status=286)  # the room closed under a polling page: stop polling
        raise
    if member is None:
        context = {"code": room.code, "room": room}
        return respond(
            request, "room_join.html", context, data={"code": room.code, "member": None}, partial=None
        )
    fresh = room.step_version > member.step_version
    if getattr(request, "htmx", False) and fresh and step_target(room):
        return HttpResponseClientRedirect(reverse("room-go", args=[room.code]))
    context = {
        "room": room,
        "member": member,
        "target": step_target(room),
        "fresh": fresh,
        "poll": POLL_SECONDS,
    }
    data = {**room_json(request, room), "member": member.name}
    return respond(request, "room.html", context, data=data, partial="current")


@require_GET
@refusals()
def room_go(request: HttpRequest, code: str) -> HttpResponse:
    """Open the room's current step (noting that this member did)."""
    room, member = _entered(request, code)
    target = step_target(room)
    if member is None or target is None:
        return redirect("room", room.code)
    rooms.opened(member, room, target[1])
    return redirect(target[0])
