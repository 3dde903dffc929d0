"""A room's host page and what only its host may do: push a step, prepare, reset and close.

Every view here finds the room by the host token in its path (see `rooms.hosted`); a wrong or
stale token, or with sign-in on someone else than the room's maker, gets a 404, as if there were
no such room. Each answers as a page (a redirect back to the host page), as the board partial
for htmx, or as JSON.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

import recipes
from playground.conf import setting
from playground.models import Room, Run
from playground.running import room_sandboxes, rooms, service
from playground.web.access import login_required_on
from playground.web.respond import Refusal, refusals, respond, wants_json
from playground.web.rooms import POLL_SECONDS, form_data, room_json, step_target, text_field
from playground.web.tracks import available
from recipes.base import Recipe
from recipes.validation import InvalidParams

PREPARE_MAX = 100
"""Sandboxes one request may ask to prepare (the instance's own cap applies on top)."""


def hosted(request: HttpRequest, token: str) -> Room:
    room = rooms.hosted(token, request.user, login_required=login_required_on())
    if room is None:
        raise Http404("no open room has this host link")
    return room


def host_context(request: HttpRequest, room: Room, **extra: Any) -> dict[str, Any]:
    seats = rooms.board(room)
    track = available().get(room.track) if room.track else None
    current = room.step.get("number", 0) if room.track else 0
    return {
        "room": room,
        "seats": seats,
        "spread": rooms.spread(seats),
        "target": step_target(room),
        "join_url": request.build_absolute_uri(reverse("room", args=[room.code])),
        "track": track,
        "next": track.step(current + 1) if track else None,
        "room_recipes": [r for r in map(recipes.get, room.recipes) if r],
        "prepared": room_sandboxes.progress(room),
        "poll": POLL_SECONDS,
        "projector": False,
        "host_run": host_run(request, room),
        **extra,
    }


def host_run(request: HttpRequest, room: Room) -> Run | None:
    """The host's own latest run since the room opened (projector mode shows it big)."""
    latest = service.history(request.session, 1)
    return latest[0] if latest and latest[0].created_at >= room.created_at else None


def board_json(request: HttpRequest, room: Room, context: dict[str, Any]) -> dict[str, Any]:
    return {
        **room_json(request, room, host=True),
        "members": [s.to_json() for s in context["seats"]],
        "spread": context["spread"].to_json() if context["spread"] else None,
        "prepared": context["prepared"],
    }


def answer(request: HttpRequest, room: Room, **extra: Any) -> HttpResponse:
    """After an action: JSON, the board for htmx, or back to the host page."""
    if wants_json(request):
        room.refresh_from_db()
        return JsonResponse({**board_json(request, room, host_context(request, room)), **extra})
    if getattr(request, "htmx", False):
        room.refresh_from_db()
        return respond(request, "room_host.html", host_context(request, room, flash=extra), partial="board")
    return redirect("room-host", room.host_token)


@require_GET
@ensure_csrf_cookie
@refusals()
def room_host(request: HttpRequest, token: str) -> HttpResponse:
    room = hosted(request, token)
    context = host_context(request, room, projector=request.GET.get("projector") == "1")
    return respond(
        request, "room_host.html", context, data=board_json(request, room, context), partial="board"
    )


def pushed_step(room: Room, data: Any) -> dict[str, Any]:
    """The step the trainer asks for: a track step's number, or a recipe with its query string."""
    if room.track:
        track = available().get(room.track)
        number = text_field(data, "number") or str(data.get("number") or "")
        if track is None or not number.isdigit() or track.step(int(number)) is None:
            raise Refusal(400, errors={"number": ["Choose one of the track's steps."]})
        return {"track": room.track, "number": int(number)}
    recipe = recipes.get(text_field(data, "recipe"))
    if recipe is None or recipe.slug not in room.recipes:
        raise Refusal(400, errors={"recipe": ["Choose one of the room's recipes."]})
    names = {p.name for p in recipe.params} | {"variant"}
    query = QueryDict(text_field(data, "query").lstrip("?"))
    pairs = [(k, v) for k, values in query.lists() for v in values if k in names]
    return {"recipe": recipe.slug, "query": urlencode(pairs)}


@require_POST
@refusals()
def room_push(request: HttpRequest, token: str) -> HttpResponse:
    room = hosted(request, token)
    room = rooms.push(room, pushed_step(room, form_data(request)))
    return answer(request, room)


def seed_target(room: Room) -> tuple[Recipe, str, dict[str, Any]]:
    """What a prepared sandbox runs once to seed its dataset: the current step, else the first."""
    step = room.step
    if room.track:
        track = available().get(room.track)
        found = track and track.step(step.get("number", 1))
        if found:
            chosen = found.recipe.validate({**found.params, "variant": found.variant})
            return found.recipe, chosen.variant, dict(chosen.params)
    recipe = recipes.get(step.get("recipe") or (room.recipes or [""])[0])
    if recipe is None:
        raise Refusal(400, "This room has no recipe to prepare sandboxes with.")
    try:
        chosen = recipe.validate(QueryDict(step.get("query", "")), form=True)
    except InvalidParams:
        chosen = recipe.validate({})
    return recipe, chosen.variant, dict(chosen.params)


@require_POST
@refusals()
def room_prepare(request: HttpRequest, token: str) -> HttpResponse:
    """Seed sandboxes for `count` people in the background; the board shows the progress. With
    `resume`, take up a preparation that stopped (its process died, or a run failed)."""
    room = hosted(request, token)
    data = form_data(request)
    if text_field(data, "resume") or data.get("resume") is True:
        if not room.prepare_wanted:
            raise Refusal(400, "Nothing to resume: no sandboxes were asked for yet.")
        taken = room_sandboxes.resume(room)
        message = "Preparing the rest again." if taken else "Another server is preparing them already."
        return answer(request, room, message=message)
    count = text_field(data, "count") or str(data.get("count") or "")
    limit = min(PREPARE_MAX, setting("MAX_SANDBOXES"))
    if not count.isdigit() or not 1 <= int(count) <= limit:
        raise Refusal(400, errors={"count": [f"Prepare between 1 and {limit} sandboxes."]})
    recipe, variant, params = seed_target(room)
    room_sandboxes.prepare(room, int(count), recipe, variant, params)
    return answer(request, room, message=f"Preparing {count} sandboxes with {recipe.title}.")


@require_POST
@refusals()
def room_reset(request: HttpRequest, token: str) -> HttpResponse:
    room = hosted(request, token)
    done = room_sandboxes.reset_all(room)
    return answer(request, room, message=f"Emptied {done} sandbox{'es' if done != 1 else ''}.", reset=done)


@require_POST
@refusals()
def room_close(request: HttpRequest, token: str) -> HttpResponse:
    """Close the room at once and drop its sandboxes: both links stop working."""
    room = hosted(request, token)
    dropped = room_sandboxes.close(room)
    data = {"closed": True, "dropped": dropped}
    return respond(request, "room_closed.html", {"room": room, **data}, data=data, partial="closed")
