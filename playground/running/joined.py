"""The open room a session joined last: its runs draw from the room's allowance (`limits`) and,
unless they ask for a version, run on the room's PostgreSQL version (`service`).

Kept apart from `rooms`, which builds on `service`, so that both can ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from playground.models import Room

ROOMS_KEY = "rooms"
"""Session key: room code → the member id this session joined it as (see `running.rooms`)."""


@dataclass(frozen=True)
class Joined:
    room: int
    """The room's primary key."""
    version: int | None
    """The version its participants run on; None: the default."""


def latest(session) -> Joined | None:
    """The open room this session joined last, or None (no query when it joined none)."""
    members = list((session.get(ROOMS_KEY) or {}).values())  # loads the session: a bad key is dropped
    if not members:
        return None
    found = (
        Room.objects.filter(members__pk__in=members, expires_at__gt=timezone.now())
        .order_by("-pk")
        .values_list("pk", "version")
        .first()
    )
    return Joined(*found) if found else None


def version(session) -> int | None:
    """The version a run of this session gets when it asks for none: its room's, if any."""
    room = latest(session)
    return room.version if room else None
