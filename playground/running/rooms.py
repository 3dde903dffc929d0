"""Workshop rooms: made by a trainer, joined by participants, read back as the host's board.

Everything a room knows lives in the app database (`Room`, `Member`), so that several app
instances without sticky sessions serve one room. A participant is a browser session: the
session remembers which member it is in which room, and the host's board reads each member's
sandbox and track progress back from that session's stored data. A member's runs draw from the
room's run allowance, sized for its members (`limits.allowance`), not from their session's alone.

Join codes are short enough to read off a projector (8 characters of 32: 32**8, about 1.1e12 codes),
and a client address may get only so many wrong (`join_refused` / `note_miss`, a token bucket
in the same table as the run allowance): guessing a live room's code is out of reach.
"""

from __future__ import annotations

import hashlib
import secrets
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import F
from django.utils import timezone

from playground.conf import setting
from playground.models import Member, Room, Run, StepProgress
from playground.running import limits, progress
from playground.running.service import session_key

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Letters and digits that cannot be misread for one another on a projector (no I, O, 0, 1)."""
CODE_LENGTH = 8
ROOMS_KEY = limits.ROOMS_KEY
"""Session key: room code → the member id this session joined it as (the run allowance reads it)."""


def normal_code(code: str) -> str:
    """A code as typed (any case, spaces or dashes) in the stored form."""
    return "".join(c for c in code.upper() if c.isalnum())[:16]


def create(
    name: str, *, track: str = "", recipes: Iterable[str] = (), owner: Any = None, version: int | None = None
) -> Room:
    """A new room open for ROOM_HOURS, with a fresh host token and join code, its participants'
    runs on PostgreSQL `version` (None: the default)."""
    expires = timezone.now() + timedelta(hours=setting("ROOM_HOURS"))
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return Room.objects.create(
        name=name,
        host_token=secrets.token_urlsafe(32),
        code=code,
        owner=owner if owner is not None and owner.is_authenticated else None,
        track=track,
        recipes=list(recipes),
        expires_at=expires,
        version=version,
    )


def open_rooms():
    return Room.objects.filter(expires_at__gt=timezone.now())


def hosted(token: str, user: Any, *, login_required: bool) -> Room | None:
    """The open room whose host token this is; with sign-in on, only for the user who made it."""
    room = open_rooms().filter(host_token=token).first()
    if room is None or (login_required and room.owner_id != getattr(user, "pk", None)):
        return None
    return room


def find(code: str) -> Room | None:
    return open_rooms().filter(code=normal_code(code)).first()


# --- join attempts ------------------------------------------------------------------------------
def _miss_key(client: str) -> str:
    return "room-join:" + hashlib.sha256(client.encode()).hexdigest()[:40]


def _miss_params(client: str) -> dict[str, Any]:
    return {
        "key": _miss_key(client),
        "burst": setting("ROOM_JOIN_MISSES"),
        "rate": setting("ROOM_JOIN_MISSES_PER_MINUTE") / 60,
        "cost": 1,
    }


def join_refused(client: str) -> bool:
    """Whether this client got so many codes wrong that it must wait before trying any code."""
    sql = f"SELECT {limits._REFILL} FROM {limits._table()} AS b WHERE key = %(key)s"
    with connection.cursor() as cursor:
        cursor.execute(sql, _miss_params(client))
        row = cursor.fetchone()
    return row is not None and row[0] < 1


def note_miss(client: str) -> None:
    """Count a wrong code against this client."""
    with connection.cursor() as cursor:
        cursor.execute(
            limits._TAKE.format(table=limits._table(), refill=limits._REFILL), _miss_params(client)
        )


def retry_after() -> int:
    rate = setting("ROOM_JOIN_MISSES_PER_MINUTE") / 60
    return max(1, round(1 / rate)) if rate > 0 else 3600


# --- members ------------------------------------------------------------------------------------
def member_of(session, room: Room) -> Member | None:
    member_id = session.get(ROOMS_KEY, {}).get(room.code)
    return room.members.filter(pk=member_id).first() if member_id else None


def join(session, room: Room, name: str) -> Member:
    """Make this session a member of `room` under `name` (the same member when it joined already)."""
    progress.learner(session, create=True)  # the board finds the member's track progress by it
    if session.session_key is None:
        session.save()
    member = member_of(session, room)
    if member is None:
        member = Member.objects.create(room=room, name=name, session_key=session.session_key)
        limits.room_grew(room.pk)
    elif member.name != name or member.session_key != session.session_key:
        member.name, member.session_key = name, session.session_key
        member.save(update_fields=["name", "session_key", "seen_at"])
    session[ROOMS_KEY] = {**session.get(ROOMS_KEY, {}), room.code: member.pk}
    return member


def push(room: Room, step: dict[str, Any]) -> Room:
    """Send every member of `room` to `step`: their pages move on their next poll."""
    Room.objects.filter(pk=room.pk).update(step=step, step_version=F("step_version") + 1)
    room.refresh_from_db()
    return room


def opened(member: Member, room: Room, label: str) -> None:
    """The member opened the room's current step."""
    Member.objects.filter(pk=member.pk).update(
        step_version=room.step_version, step_label=label, seen_at=timezone.now()
    )


# --- the host's board ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Seat:
    """One member as the host sees them."""

    member: Member
    run: Run | None
    """Their latest run since the room opened, if any."""
    step: StepProgress | None
    """Their progress on the current track step, if they tried it."""
    current: bool
    """Whether they opened the step pushed last."""

    @property
    def answer(self) -> dict[str, Any] | None:
        return (self.step.outcome or {}).get("answer") if self.step else None

    def to_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "name": self.member.name,
            "step": self.member.step_label or None,
            "current": self.current,
            "run": None
            if run is None
            else {
                "id": run.pk,
                "recipe": run.recipe,
                "variant": run.variant,
                "ok": run.ok,
                "query_count": run.query_count,
                "rows_read": run.rows_read,
                "elapsed_ms": run.elapsed_ms,
            },
            "done": self.step.done if self.step else None,
            "answer": self.answer,
        }


def sessions_of(members: list[Member]) -> dict[str, dict[str, Any]]:
    """Session key → its stored data, for the members' sessions that still live."""
    rows = Session.objects.filter(
        session_key__in=[m.session_key for m in members], expire_date__gt=timezone.now()
    )
    return {row.session_key: row.get_decoded() for row in rows}


def board(room: Room) -> list[Seat]:
    """Every member with their latest run and their progress on the current track step."""
    members = list(room.members.all())
    data = sessions_of(members)
    key = session_key(room.version)  # the sandbox its members run in: the room's version
    roles = {m.pk: data.get(m.session_key, {}).get(key) for m in members}
    learners = {m.pk: data.get(m.session_key, {}).get(progress.LEARNER_KEY) for m in members}
    latest = (
        Run.objects.filter(
            sandbox__role__in=[r for r in roles.values() if r], created_at__gte=room.created_at
        )
        .order_by("sandbox_id", "-created_at")
        .distinct("sandbox_id")
        .select_related("sandbox")
        .defer("result")
    )
    runs = {run.sandbox.role: run for run in latest}
    steps: dict[str, StepProgress] = {}
    if room.step.get("track"):
        rows = StepProgress.objects.filter(
            learner__in=[k for k in learners.values() if k],
            track=room.step["track"],
            step=room.step["number"],
        )
        steps = {row.learner: row for row in rows}
    return [
        Seat(
            member=m,
            run=runs.get(roles[m.pk]) if roles[m.pk] else None,
            step=steps.get(learners[m.pk]) if learners[m.pk] else None,
            current=room.step_version > 0 and m.step_version == room.step_version,
        )
        for m in members
    ]


@dataclass(frozen=True)
class Spread:
    """The members' latest guesses at the current question beside the truth their runs gave."""

    guesses: list[tuple[str, Any, bool]]
    """(display name, guess, right) for each member who guessed."""
    truths: list[Any]
    """The distinct truths (one, unless members ran it with different parameters)."""

    @property
    def right(self) -> int:
        return sum(1 for _, _, ok in self.guesses if ok)

    @property
    def numbers(self) -> dict[str, float] | None:
        """Lowest, median and highest guess, when the guesses are numbers."""
        values = [g for _, g, _ in self.guesses if isinstance(g, int | float) and not isinstance(g, bool)]
        if not values:
            return None
        return {"low": min(values), "median": statistics.median(values), "high": max(values)}

    def to_json(self) -> dict[str, Any]:
        return {
            "guesses": [{"name": n, "guess": g, "right": ok} for n, g, ok in self.guesses],
            "truths": self.truths,
            "right": self.right,
            "numbers": self.numbers,
        }


def spread(seats: list[Seat]) -> Spread | None:
    """The spread of predictions on the current step, or None when nobody answered a question."""
    answered = [(s.member.name, s.answer) for s in seats if s.answer]
    if not answered:
        return None
    truths: list[Any] = []
    for _, answer in answered:
        if answer.get("truth") not in truths:
            truths.append(answer.get("truth"))
    return Spread([(n, a.get("guess"), bool(a.get("right"))) for n, a in answered], truths)
