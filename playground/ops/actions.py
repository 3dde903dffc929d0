"""What staff may do to the instance, each done by the code the site itself uses, and each
recorded as an `OperatorAction` (who, what, to which object, when) once it took effect: an
action that failed raises before anything is recorded as done."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from playground import sandbox
from playground.models import OperatorAction, Room, Sandbox
from playground.running import room_sandboxes
from playground.sandbox.reaper import reap_once


def record(user: Any, action: str, target: str = "", **detail: Any) -> OperatorAction:
    return OperatorAction.objects.create(
        user=user if getattr(user, "pk", None) else None,
        username=user.get_username() if getattr(user, "pk", None) else "",
        action=action,
        target=target,
        detail=detail,
    )


def drop_sandbox(user: Any, box: Sandbox) -> OperatorAction:
    """Drop one sandbox now (its tables and its runs go; its owner gets a fresh one next run)."""
    runs = box.runs.count()
    with transaction.atomic():  # locked as the reaper locks it: never dropped twice
        locked = Sandbox.objects.select_for_update().filter(pk=box.pk).first()
        if locked is not None:
            sandbox.drop(locked)
    return record(user, "drop sandbox", box.role, runs=runs, found=locked is not None)


def reap_now(user: Any) -> OperatorAction:
    """One reaping pass now, waiting for a pass another process may be running."""
    done = reap_once(wait=True)
    return record(user, "reap now", "", dropped=list(done.dropped))


def close_room(user: Any, room: Room) -> OperatorAction:
    """Close a workshop room at once, as its host's Close button does: its members' sandboxes go."""
    dropped = room_sandboxes.close(room)
    return record(user, "close room", f"{room.name} ({room.code})", dropped=dropped)
