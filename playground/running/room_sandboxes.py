"""A room's sandboxes: seeded ahead of the session, reset all at once, dropped when it closes.

When a room of 30 presses Run for the first time together, each new sandbox seeds its own
dataset and the first results queue behind one another. `prepare` provisions and seeds sandboxes
in a background thread before anyone joins; `take_prepared` hands one to a member joining
without a sandbox of their own.

Scaled out, the thread lives in one worker of one instance, and the host's polls land anywhere:
so everything about it is in the app database. The room holds what was asked
(`prepare_wanted`, `prepare_seed`), the `PreparedSandbox` rows what was made, and
`prepare_worker` / `prepare_beat` which thread is at it and when it last said so. A thread
claims the work with one conditional UPDATE, so two never prepare one room at once; when its
process dies its heartbeat goes stale, the host page says "stopped", and `resume` (from any
instance) takes it over.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

import recipes
from playground import sandbox
from playground.conf import setting
from playground.models import Member, PreparedSandbox, Room, RunAllowance, Sandbox
from playground.running import rooms, service
from playground.running.service import session_key
from recipes.base import Recipe

log = logging.getLogger(__name__)

PREPARED_USES = 8
"""A prepared sandbox counts as this many runs, so the reaper keeps it idle long enough
(SANDBOX_IDLE_SECONDS_PER_USE each) for a session prepared an hour or two ahead."""


def stale_after() -> float:
    """Seconds a preparing thread may stay silent before it counts as dead: a seeding run may wait
    for a run slot, then run to its deadline; twice that and it has surely gone."""
    return 2 * (setting("RUN_SLOT_WAIT_SECONDS") + setting("RUN_DEADLINE_SECONDS")) + 10


def prepare(room: Room, count: int, recipe: Recipe, variant: str, params: dict[str, Any]) -> None:
    """Ask for `count` more sandboxes seeded with `recipe`'s dataset, and see that a thread is
    preparing them (this process's, unless another process's is alive and takes them on)."""
    seed = {"recipe": recipe.slug, "variant": variant, "params": params}
    Room.objects.filter(pk=room.pk).update(
        prepare_wanted=count + room.prepared.count(), prepare_error="", prepare_seed=seed
    )
    resume(room)


def resume(room: Room) -> bool:
    """Start preparing in this process unless a live thread (in any process) is at it already;
    whether this process took it on. A thread whose process died is taken over once it is stale."""
    worker = uuid.uuid4().hex
    now = timezone.now()
    alive = Q(prepare_beat__gte=now - timedelta(seconds=stale_after())) & ~Q(prepare_worker="")
    claimed = (
        Room.objects.filter(pk=room.pk, expires_at__gt=now)
        .exclude(alive)
        .update(prepare_worker=worker, prepare_beat=now, prepare_error="")
    )
    if claimed:
        threading.Thread(
            target=_prepare, args=(room.pk, worker), name=f"prepare-room-{room.pk}", daemon=True
        ).start()
    return bool(claimed)


def _beat(room_id: int, worker: str) -> Room | None:
    """Say this thread lives; the room as it is now, or None when the thread must stop (the room
    closed, or another thread took the preparation over)."""
    mine = Room.objects.filter(pk=room_id, prepare_worker=worker, expires_at__gt=timezone.now())
    if not mine.update(prepare_beat=timezone.now()):
        return None
    return mine.first()


def _prepare(room_id: int, worker: str) -> None:
    try:
        while (room := _beat(room_id, worker)) is not None and room.prepared.count() < room.prepare_wanted:
            seed = room.prepare_seed
            recipe = recipes.get(seed.get("recipe", ""))
            if recipe is None or seed.get("variant") not in recipe.variants:
                raise RuntimeError("the room's recipe to seed with is gone")
            session: dict[str, Any] = {}
            variant, params = seed["variant"], seed.get("params", {})
            result = service.run_recipe(session, recipe, variant, params, keep=False, version=room.version)
            if not result.ok and not recipe.variants[seed["variant"]].fails_on_purpose:
                raise RuntimeError(result.error or "the seeding run failed")
            role = session[session_key(room.version)]
            Sandbox.objects.filter(role=role).update(uses=PREPARED_USES)
            PreparedSandbox.objects.create(room_id=room_id, role=role)
    except Exception as exc:  # the host page says why; the thread must not die silently
        log.exception("preparing sandboxes for room %s stopped", room_id)
        Room.objects.filter(pk=room_id, prepare_worker=worker).update(prepare_error=str(exc)[:500])
    finally:
        Room.objects.filter(pk=room_id, prepare_worker=worker).update(prepare_worker="", prepare_beat=None)
        close_old_connections()
        connection.close()


def progress(room: Room) -> dict[str, Any]:
    """How far preparing went, as any instance reads it from the app database: wanted, ready
    (made so far), taken (by members), error, and the state: "idle" (nothing asked), "preparing"
    (a live thread is at it), "done", or "stopped" (an error, or its process died: resume it)."""
    made = room.prepared.count()
    taken = room.prepared.exclude(member=None).count()
    if not room.prepare_wanted:
        state = "idle"
    elif made >= room.prepare_wanted:
        state = "done"
    elif (
        room.prepare_worker
        and room.prepare_beat
        and not room.prepare_error
        and timezone.now() - room.prepare_beat < timedelta(seconds=stale_after())
    ):
        state = "preparing"
    else:
        state = "stopped"
    return {
        "wanted": room.prepare_wanted,
        "ready": made,
        "taken": taken,
        "error": room.prepare_error or None,
        "state": state,
    }


def take_prepared(session, room: Room, member: Member) -> bool:
    """Give a joining member one of the room's prepared sandboxes (of the room's version), unless
    their session has one of that version."""
    key = session_key(room.version)
    if session.get(key):
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
    session[key] = spare.role
    return True


def member_roles(room: Room) -> list[str]:
    """The sandbox roles of the room's members of the room's version, read from their sessions."""
    members = list(room.members.all())
    data = rooms.sessions_of(members)
    key = session_key(room.version)
    return [r for m in members if (r := data.get(m.session_key, {}).get(key))]


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
    return len(_drop_sandboxes(room))


def _drop_sandboxes(room: Room) -> list[str]:
    """Drop the members' and the prepared sandboxes of `room`; the roles dropped."""
    roles = {*member_roles(room), *room.prepared.values_list("role", flat=True)}
    dropped = []
    for role in sorted(roles):
        with transaction.atomic():  # locked as the reaper locks it: never dropped twice
            box = Sandbox.objects.select_for_update(skip_locked=True).filter(role=role).first()
            if box is not None:
                sandbox.drop(box)
                dropped.append(role)
    return dropped


def reap_expired() -> list[str]:
    """Delete the rooms past their expiry (closed ones too) with their members, their prepared
    sandboxes and their run allowance, dropping what sandboxes they still had; the roles dropped.

    Run by the reaper under its advisory lock, so one process at a time does it.
    """
    dropped: list[str] = []
    for room in Room.objects.filter(expires_at__lte=timezone.now()).order_by("pk"):
        dropped += _drop_sandboxes(room)
        RunAllowance.objects.filter(key=f"room:{room.pk}").delete()
        room.delete()  # its Member and PreparedSandbox rows go with it
        log.info("deleted expired room %s", room.pk)
    return dropped
