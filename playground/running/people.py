"""What follows a signed-in person from browser to browser: their sandbox, and with it their
runs and the snapshots made from them, and their track progress.

The sandbox follows the person, not the browser. A person signed in at work and on a laptop is
one learner: the tables they seeded, the runs they compare and the steps they passed should be
the same wherever they look, and an instance's cap counts people, not their devices. Two
browsers of one person share one schema the way two tabs of one browser always did (runs take
turns on the role's connections, a Reset empties it for both). Visitors who are not signed in
keep one sandbox per browser session, as before.

On signing in (`adopt`, a `user_logged_in` receiver), a person who has no sandbox yet takes the
one this browser used before signing in, and progress made in this browser before signing in
moves to the person's learner key (`user:<id>`), step by step, where they have none of their
own. On every request of a signed-in session (`follow`, called by `web.access.PersonMiddleware`)
the session is pointed at the person's most recently used sandbox of each version and their learner key, so
that what another browser of theirs made since shows here at once: one indexed query. A sandbox
made for a signed-in session is theirs (`service.sandbox_for`).

Rooms a person made are theirs in any browser already (the host page checks the maker). A
room's membership stays with the browser that joined it: a participant is a seat in the room.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef

from playground.models import Sandbox, StepProgress
from playground.running.progress import LEARNER_KEY
from playground.running.service import SESSION_KEY, session_key
from playground.sandbox import servers as sandboxes


def learner_key(user_id: Any) -> str:
    return f"user:{user_id}"


def move_progress(old: str, new: str) -> int:
    """Give learner `new` the steps `old` tried that `new` has no row for; how many moved."""
    theirs = StepProgress.objects.filter(learner=new, track=OuterRef("track"), step=OuterRef("step"))
    return StepProgress.objects.filter(learner=old).filter(~Exists(theirs)).update(learner=new)


def latest_roles(user_id: Any) -> dict[str, str]:
    """The session key → role of the person's most recently used sandbox of each version."""
    keys = {s.name: session_key(s.version) for s in sandboxes.configured()}
    keys[""] = keys[sandboxes.MAIN]  # rows made before servers were named
    latest: dict[str, str] = {}
    theirs = Sandbox.objects.filter(owner_id=user_id).order_by("-last_used_at")
    for role, server in theirs.values_list("role", "server"):
        key = keys.get(server)
        if key is not None:
            latest.setdefault(key, role)
    return latest


def follow(session, user_id: Any) -> None:
    """Point `session` at the person's sandboxes (one per version they used) and learner key."""
    for key, own in latest_roles(user_id).items():
        if session.get(key) != own:
            session[key] = own
    key = learner_key(user_id)
    if session.get(LEARNER_KEY) != key:
        session[LEARNER_KEY] = key


def adopt(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """A freshly signed-in session: what this browser did before becomes the person's, unless
    they have a sandbox already (then that one is theirs here too)."""
    if request is None or not hasattr(request, "session"):
        return
    session = request.session
    here = session.get(SESSION_KEY)
    if here and not Sandbox.objects.filter(owner_id=user.pk).exists():
        Sandbox.objects.filter(role=here, owner__isnull=True).update(owner=user)
    before = session.get(LEARNER_KEY)
    if before and before != learner_key(user.pk):
        move_progress(before, learner_key(user.pk))
    follow(session, user.pk)
