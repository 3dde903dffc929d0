"""A workshop room made for PostgreSQL 16: the new-room form offers the versions, its sandboxes
are prepared on 16, its participants' runs go there (a track step, a pushed recipe, a recipe page
they open themselves), and the board, reset and close find those sandboxes."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from playground.models import PreparedSandbox, Room, Sandbox
from playground.running.service import session_key
from tests.test_rooms import (
    _drop_sandboxes,  # noqa: F401  (the fixture)
    join,
    make_room,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

ON_16 = session_key(16)


def test_the_new_room_form_offers_the_versions_and_refuses_one_not_offered():
    page = Client().get("/rooms/new")
    html = page.content.decode()
    assert re.search(r'<input type="radio" name="pg" value="18" checked>', html)
    assert '<input type="radio" name="pg" value="16">' in html
    refused = Client().post("/rooms/new", {"name": "Old planner", "track": "onboarding", "pg": "99"})
    assert refused.status_code == 400 and b"is not offered here" in refused.content
    assert not Room.objects.exists()
    made = Client().post(
        "/rooms/new",
        '{"name": "By script", "track": "onboarding", "pg": 16}',
        content_type="application/json",
        HTTP_ACCEPT="application/json",
    )
    assert made.status_code == 201 and made.json()["version"] == 16


def test_a_room_on_16_prepares_runs_and_closes_there():
    host = Client()
    room = make_room(host, track="onboarding", pg="16")
    assert room.version == 16
    assert b'id="room-version">PostgreSQL 16' in host.get(f"/rooms/host/{room.host_token}/").content
    host.post(f"/rooms/host/{room.host_token}/prepare", {"count": "1"})
    wait_for(lambda: PreparedSandbox.objects.filter(room=room).count() == 1)
    prepared = PreparedSandbox.objects.get(room=room).role
    assert Sandbox.objects.get(role=prepared).server == "pg16"

    alice, bob = join(room, "Alice"), join(room, "Bob")
    assert alice.session[ON_16] == prepared and "sandbox" not in alice.session
    host.post(f"/rooms/host/{room.host_token}/push", {"number": "1"})
    ran = alice.post(
        "/tracks/onboarding/1/run",
        {"variant": "raw-update", "rows": "5", "guess-stamped": "0"},
        HTTP_ACCEPT="application/json",
    )
    assert ran.status_code == 200 and ran.json()["server"] == "pg16", ran.content[:300]
    # A recipe page a participant opens on their own picks the room's version.
    page = bob.get("/recipes/keyset-pagination/")
    assert re.search(rb'<input type="radio" name="pg" value="16"[^>]*checked', page.content)
    board = host.get(f"/rooms/host/{room.host_token}/", HTTP_ACCEPT="application/json").json()
    seen = {m["name"]: m for m in board["members"]}
    assert seen["Alice"]["run"]["ok"] and seen["Bob"]["run"] is None

    closed = host.post(f"/rooms/host/{room.host_token}/close", HTTP_ACCEPT="application/json")
    assert closed.json() == {"closed": True, "dropped": 1}
    assert not Sandbox.objects.filter(role=prepared).exists()


def test_a_recipe_pushed_in_a_room_on_16_opens_on_16():
    host = Client()
    room = make_room(host, recipes=["keyset-pagination"], pg="16")
    host.post(f"/rooms/host/{room.host_token}/push", {"recipe": "keyset-pagination", "query": "page=40"})
    alice = join(room, "Alice")
    go = alice.get(f"/rooms/{room.code}/go")
    assert go["Location"] == "/recipes/keyset-pagination/?page=40&pg=16"
    page = alice.get(go["Location"])
    assert re.search(rb'<input type="radio" name="pg" value="16"[^>]*checked', page.content)
    assert 'value="40"' in page.content.decode()


def test_a_sweep_in_a_room_on_16_leaves_out_the_lines_16_cannot_run():
    room = make_room(Client(), track="onboarding", pg="16")
    alice = join(room, "Alice")
    form = {"variant": "uuid4", "rows": "1000", "sweep_param": "rows", "sweep_from": "1000"}
    form |= {"sweep_to": "2000", "sweep_points": "2", "sweep_y": "query_count"}
    swept = alice.post("/recipes/uuid-keys/sweep", form, HTTP_ACCEPT="application/json")
    assert swept.status_code == 200, swept.content[:300]
    data = swept.json()
    assert data["ok"] and data["done"] == 2
    assert any("uuid7" in message and "18" in message for message in data["refused"]), data["refused"]
    drawn = {series["label"] for series in data["series"]}
    assert drawn and not any("uuid7" in label for label in drawn), drawn
    assert set(Sandbox.objects.filter(role=alice.session[ON_16]).values_list("server", flat=True)) == {"pg16"}
