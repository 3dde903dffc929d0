"""A room's sandboxes: seeded ahead of the session, reset all at once, dropped when it closes.

When a room of 30 presses Run for the first time together, each new sandbox seeds its own
dataset and the first results queue behind one another. `prepare` provisions and seeds sandboxes
in a background thread before anyone joins; `take_prepared` hands one to a member joining
without a sandbox of their own. The progress is in the app database (`Room.prepare_wanted`, the
`PreparedSandbox` rows), so any instance's host page shows it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from playground import sandbox
from playground.models import Member, PreparedSandbox, Room, Sandbox
from playground.running import rooms, service
from playground.running.service import SESSION_KEY
from recipes.base import Recipe

log = logging.getLogger(__name__)

PREPARED_USES = 8
"""A prepared sandbox counts as this many runs, so the reaper keeps it idle long enough
(SANDBOX_IDLE_SECONDS_PER_USE each) for a session prepared an hour or two ahead."""


def prepare(room: Room, count: int, recipe: Recipe, variant: str, params: dict[str, Any]) -> None:
    """Seed `count` more sandboxes for `room` with `recipe`'s dataset, in a background thread."""
    Room.objects.filter(pk=room.pk).update(prepare_wanted=count + room.prepared.count(), prepare_error="")
    thread = threading.Thread(
        target=_prepare,
        args=(room.pk, count, recipe, variant, params),
        name=f"prepare-room-{room.pk}",
        daemon=True,
    )
    thread.start()


def _prepare(room_id: int, count: int, recipe: Recipe, variant: str, params: dict[str, Any]) -> None:
    try:
        for _ in range(count):
            if not Room.objects.filter(pk=room_id, expires_at__gt=timezone.now()).exists():
                return  # closed meanwhile
            session: dict[str, Any] = {}
            result = service.run_recipe(session, recipe, variant, params, keep=False)
            if not result.ok and not recipe.variants[variant].fails_on_purpose:
                raise RuntimeError(result.error or "the seeding run failed")
            Sandbox.objects.filter(role=session[SESSION_KEY]).update(uses=PREPARED_USES)
            PreparedSandbox.objects.create(room_id=room_id, role=session[SESSION_KEY])
    except Exception as exc:  # the host page says why; the thread must not die silently
        log.exception("preparing sandboxes for room %s stopped", room_id)
        Room.objects.filter(pk=room_id).update(prepare_error=str(exc)[:500])
    finally:
        close_old_connections()
        connection.close()


def progress(room: Room) -> dict[str, Any]:
    """How far preparing went: wanted, ready (made so far), taken (by members), error."""
    made = room.prepared.count()
    taken = room.prepared.exclude(member=None).count()
    return {"wanted": room.prepare_wanted, "ready": made, "taken": taken, "error": room.prepare_error or None}


def take_prepared(session, room: Room, member: Member) -> bool:
    """Give a joining member one of the room's prepared sandboxes, unless their session has one."""
    if session.get(SESSION_KEY):
        return False
    with transaction.atomic():
        spare = (
            PreparedSandbox.objects.select_for_update(skip_locked=True)
            .filter(room=room, member=None)
            .order_by("pk")
            .first()
        )
        if spare is None or not Sandbox.objects.filter(role=spare.role).exists():
            return False
        spare.member = member
        spare.save(update_fields=["member"])
    session[SESSION_KEY] = spare.role
    return True


def member_roles(room: Room) -> list[str]:
    """The sandbox roles of the room's members, read from their sessions."""
    members = list(room.members.all())
    data = rooms.sessions_of(members)
    return [r for m in members if (r := data.get(m.session_key, {}).get(SESSION_KEY))]


def reset_all(room: Room) -> int:
    """Empty every member's sandbox (their next run seeds again); how many were reset."""
    done = 0
    for box in Sandbox.objects.filter(role__in=member_roles(room)):
        sandbox.reset(box)
        sandbox.touch(box)
        done += 1
    return done


def close(room: Room) -> int:
    """Close the room now and drop its members' and its prepared sandboxes; how many were dropped."""
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now())
    roles = {*member_roles(room), *room.prepared.values_list("role", flat=True)}
    dropped = 0
    for role in roles:
        with transaction.atomic():  # locked as the reaper locks it: never dropped twice
            box = Sandbox.objects.select_for_update(skip_locked=True).filter(role=role).first()
            if box is not None:
                sandbox.drop(box)
                dropped += 1
    return dropped
