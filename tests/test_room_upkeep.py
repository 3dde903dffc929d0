"""A room's upkeep across workers: its shared run allowance, preparing sandboxes that any
instance can follow and take over, and the reaper deleting it once it expired."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

import recipes
from playground import sandbox as sandboxes
from playground.models import Member, PreparedSandbox, Room, RunAllowance, Sandbox
from playground.running import room_sandboxes
from tests.test_rooms import join, make_room, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

RUN = ("/recipes/keyset-pagination/run", {"variant": "keyset", "rows": "1000"})


@pytest.fixture(autouse=True)
def _drop_sandboxes(transactional_db) -> Iterator[None]:
    yield
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


def test_a_room_member_runs_on_the_rooms_allowance_until_the_room_has_spent_it(settings):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "RUN_BURST": 1, "RUNS_PER_MINUTE": 1}
    alone = Client()
    assert [alone.post(*RUN).status_code for _ in range(2)] == [200, 429]
    room = make_room(Client(), recipes=["keyset-pagination"])
    alice, bob, carol = (join(room, n) for n in ("Alice", "Bob", "Carol"))
    # From the same address, Alice runs twice in a row where a session alone was refused.
    assert [alice.post(*RUN).status_code for _ in range(2)] == [200, 200]
    assert bob.post(*RUN).status_code == 200
    refused = carol.post(*RUN, HTTP_ACCEPT="application/json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "this room of 3 may start 3 runs in a row" in refused.json()["error"]
    page = alice.post(*RUN)
    assert page.status_code == 429 and b"this room of 3" in page.content
    bucket = RunAllowance.objects.get(key=f"room:{room.pk}")
    assert bucket.tokens < 1 and not RunAllowance.objects.filter(key=alice.session.session_key).exists()


def test_the_reaper_deletes_expired_rooms_with_their_sandboxes(make_sandbox):
    expired, kept = (make_room(Client(), recipes=["keyset-pagination"]) for _ in range(2))
    alice, bob = join(expired, "Alice"), join(kept, "Bob")
    for person in (alice, bob):
        assert person.post(*RUN).status_code == 200
    spare, taken = make_sandbox(), make_sandbox()
    PreparedSandbox.objects.create(room=expired, role=spare.role)
    PreparedSandbox.objects.create(room=expired, role=taken.role, member=Member.objects.get(name="Alice"))
    Room.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    done = sandboxes.reap_once()
    assert set(done.dropped) == {alice.session["sandbox"], spare.role, taken.role}
    assert list(Room.objects.all()) == [kept]
    assert list(Member.objects.values_list("name", flat=True)) == ["Bob"]
    assert not PreparedSandbox.objects.exists()
    assert not RunAllowance.objects.filter(key=f"room:{expired.pk}").exists()
    assert Sandbox.objects.filter(role=bob.session["sandbox"]).exists()  # an open room keeps its own
    assert alice.get(f"/rooms/{expired.code}/").status_code == 404


def left_behind(room: Room, *, silent_for: float, wanted: int = 2) -> None:
    """As if a worker (now dead, or elsewhere) had started preparing `wanted` sandboxes."""
    chosen = recipes.get("keyset-pagination").validate({"rows": 1000})
    Room.objects.filter(pk=room.pk).update(
        prepare_wanted=wanted,
        prepare_seed={
            "recipe": "keyset-pagination",
            "variant": chosen.variant,
            "params": dict(chosen.params),
        },
        prepare_worker="f" * 32,
        prepare_beat=timezone.now() - timedelta(seconds=silent_for),
    )


def test_a_preparation_whose_process_died_shows_as_stopped_and_is_resumed():
    host = Client()
    room = make_room(host, recipes=["keyset-pagination"])
    left_behind(room, silent_for=room_sandboxes.stale_after() + 1)
    board = f"/rooms/host/{room.host_token}/"
    assert host.get(board, HTTP_ACCEPT="application/json").json()["prepared"]["state"] == "stopped"
    page = host.get(board).content.decode()
    assert 'data-state="stopped"' in page and 'id="prepare-resume"' in page and "went away" in page
    resumed = host.post(board + "prepare", {"resume": "1"}, HTTP_HX_REQUEST="true")
    assert resumed.status_code == 200 and b"Preparing the rest again." in resumed.content
    wait_for(lambda: PreparedSandbox.objects.filter(room=room).count() == 2)
    wait_for(lambda: Room.objects.get(pk=room.pk).prepare_worker == "")
    after = host.get(board, HTTP_ACCEPT="application/json").json()["prepared"]
    assert after == {"wanted": 2, "ready": 2, "taken": 0, "error": None, "state": "done"}


def test_a_live_preparation_elsewhere_is_shown_and_not_doubled():
    host = Client()
    room = make_room(host, recipes=["keyset-pagination"])
    left_behind(room, silent_for=1)  # another instance's thread, alive
    board = f"/rooms/host/{room.host_token}/"
    assert host.get(board, HTTP_ACCEPT="application/json").json()["prepared"]["state"] == "preparing"
    again = host.post(board + "prepare", {"resume": "1"}, HTTP_ACCEPT="application/json")
    assert again.status_code == 200 and again.json()["message"] == "Another server is preparing them already."
    assert Room.objects.get(pk=room.pk).prepare_worker == "f" * 32 and not PreparedSandbox.objects.exists()
    fresh = make_room(host, recipes=["keyset-pagination"])
    refused = host.post(f"/rooms/host/{fresh.host_token}/prepare", {"resume": "1"})
    assert refused.status_code == 400
