"""Workshop rooms over HTTP: who may open what, join codes, names, pushing a step, the board."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import Member, PreparedSandbox, Room, Sandbox
from playground.running import rooms

pytestmark = pytest.mark.django_db(transaction=True)

EVIL = '<script>alert("x")</script>&amp;'


@pytest.fixture(autouse=True)
def _drop_sandboxes(transactional_db) -> Iterator[None]:
    yield
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


def make_room(client: Client, **fields) -> Room:
    response = client.post("/rooms/new", {"name": "Tuesday onboarding", **fields})
    assert response.status_code == 302, response.content[:300]
    room = Room.objects.get(host_token=response["Location"].split("/")[-2])
    assert response["Location"] == f"/rooms/host/{room.host_token}/"
    return room


def join(room: Room, name: str) -> Client:
    client = Client()
    response = client.post("/rooms/join", {"code": room.code.lower(), "name": name})
    assert response.status_code == 302 and response["Location"] == f"/rooms/{room.code}/"
    return client


def test_a_room_has_a_long_host_token_and_a_readable_join_code():
    room = make_room(Client(), track="onboarding")
    assert len(room.host_token) >= 43 and len(room.code) == rooms.CODE_LENGTH
    assert set(room.code) <= set(rooms.CODE_ALPHABET)
    assert room.recipes == ["timestamp-mixin", "exists-count", "bulk-insert", "connection-pool"]
    assert room.expires_at > timezone.now() + timedelta(hours=11)


def test_a_room_needs_a_name_and_a_track_or_recipes():
    client = Client()
    response = client.post("/rooms/new", {"name": ""}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and set(response.json()["errors"]) == {"name", "recipes"}
    page = client.post("/rooms/new", {"name": "x", "recipes": ["no-such-recipe"]})
    assert page.status_code == 400 and b"Unknown recipes: no-such-recipe" in page.content
    made = client.post(
        "/rooms/new",
        {"name": "api", "recipes": ["keyset-pagination"]},
        content_type="application/json",
        HTTP_ACCEPT="application/json",
    )
    assert made.status_code == 201 and made.json()["host_url"].endswith("/")
    assert not Room.objects.exclude(name="api").exists()


def test_participants_cannot_open_the_host_page_nor_push_a_step():
    room = make_room(Client(), track="onboarding")
    alice = join(room, "Alice")
    for path in ("/rooms/host/" + room.code + "/", "/rooms/host/" + room.host_token[:-1] + "x/"):
        assert alice.get(path).status_code == 404
        for action in ("push", "prepare", "reset", "close"):
            assert alice.post(path + action, {"number": "2", "count": "1"}).status_code == 404
    room.refresh_from_db()
    assert room.step_version == 0
    page = alice.get(f"/rooms/{room.code}/").content.decode()
    assert room.host_token not in page and "/rooms/host/" not in page
    assert (
        room.host_token
        not in alice.get(f"/rooms/{room.code}/", HTTP_ACCEPT="application/json").content.decode()
    )


def test_with_sign_in_on_only_the_maker_opens_the_host_page(settings):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "REQUIRE_LOGIN": True}
    ada, bob = (User.objects.create_user(n, password="pw-" + n) for n in ("ada", "bob"))
    maker, other = Client(), Client()
    maker.force_login(ada)
    other.force_login(bob)
    room = make_room(maker, recipes=["keyset-pagination"])
    host = f"/rooms/host/{room.host_token}/"
    assert maker.get(host).status_code == 200
    assert other.get(host).status_code == 404  # the link alone is not enough
    assert other.post(host + "push", {"recipe": "keyset-pagination"}).status_code == 404


def test_display_names_are_escaped_on_every_page():
    host = Client()
    room = make_room(host, recipes=["keyset-pagination"])
    evil = join(room, EVIL)
    for page in (host.get(f"/rooms/host/{room.host_token}/"), evil.get(f"/rooms/{room.code}/")):
        text = page.content.decode()
        assert (
            "<script>alert" not in text
            and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in text
        )
    board = host.get(f"/rooms/host/{room.host_token}/", HTTP_ACCEPT="application/json").json()
    assert board["members"][0]["name"] == EVIL  # JSON carries it as data, never as markup


def test_guessing_join_codes_is_refused_with_429(settings):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "ROOM_JOIN_MISSES": 3, "ROOM_JOIN_MISSES_PER_MINUTE": 1}
    room = make_room(Client(), recipes=["keyset-pagination"])
    guesser = Client()
    statuses = [
        guesser.post("/rooms/join", {"code": f"AAAA{n:04}", "name": "g"}).status_code for n in range(3)
    ]
    assert statuses == [404] * 3
    for attempt in (
        guesser.post("/rooms/join", {"code": room.code, "name": "g"}),  # the right code: refused all the same
        guesser.get(f"/rooms/{room.code}/"),
        guesser.get("/rooms/ZZZZZZZZ/", HTTP_ACCEPT="application/json"),
    ):
        assert attempt.status_code == 429 and int(attempt["Retry-After"]) > 0
    assert not Member.objects.exists()
    # Another address is not held back by this one's guesses.
    assert (
        Client(REMOTE_ADDR="10.9.8.7").post("/rooms/join", {"code": room.code, "name": "h"}).status_code
        == 302
    )


def test_a_pushed_step_moves_every_participant_there():
    host = Client()
    room = make_room(host, track="onboarding")
    people = [join(room, n) for n in ("Alice", "Bob")]
    waiting = people[0].get(f"/rooms/{room.code}/", HTTP_HX_REQUEST="true")
    assert waiting.status_code == 200 and "HX-Redirect" not in waiting
    pushed = host.post(f"/rooms/host/{room.host_token}/push", {"number": "3"})
    assert pushed.status_code == 302
    for person in people:
        poll = person.get(f"/rooms/{room.code}/", HTTP_HX_REQUEST="true")
        assert poll["HX-Redirect"] == f"/rooms/{room.code}/go"
        go = person.get(poll["HX-Redirect"])
        assert go.status_code == 302 and go["Location"] == "/tracks/onboarding/3/"
        assert "HX-Redirect" not in person.get(f"/rooms/{room.code}/", HTTP_HX_REQUEST="true")
    board = host.get(f"/rooms/host/{room.host_token}/", HTTP_ACCEPT="application/json").json()
    assert [m["name"] for m in board["members"]] == ["Alice", "Bob"]
    # On any other page, the room bar's poll moves a participant on too.
    bar = f"/rooms/{room.code}/?bar=1"
    assert 'id="room-bar"' in people[0].get("/tracks/onboarding/3/").content.decode()
    assert people[0].get(bar, HTTP_HX_REQUEST="true").status_code == 204
    host.post(f"/rooms/host/{room.host_token}/push", {"number": "4"})
    assert people[0].get(bar, HTTP_HX_REQUEST="true")["HX-Redirect"] == f"/rooms/{room.code}/go"
    assert 'id="room-bar"' not in host.get("/").content.decode()
    assert all(m["current"] and m["step"].startswith("Step 3: ") for m in board["members"])


def test_the_board_shows_each_run_and_the_spread_of_predictions():
    host = Client()
    room = make_room(host, track="onboarding")
    host.post(f"/rooms/host/{room.host_token}/push", {"number": "1"})
    alice, bob, carol = (join(room, n) for n in ("Alice", "Bob", "Carol"))
    for person, guess in ((alice, "0"), (bob, "5")):
        run = person.post(
            "/tracks/onboarding/1/run", {"variant": "raw-update", "rows": "5", "guess-stamped": guess}
        )
        assert run.status_code == 200
    board = host.get(f"/rooms/host/{room.host_token}/", HTTP_ACCEPT="application/json").json()
    seen = {m["name"]: m for m in board["members"]}
    assert seen["Alice"]["run"]["ok"] and seen["Alice"]["run"]["query_count"] >= 1
    assert seen["Alice"]["done"] and seen["Carol"]["run"] is None and seen["Carol"]["done"] is None
    spread = board["spread"]
    assert spread["truths"] == [0] and spread["right"] == 1
    assert {(g["name"], g["guess"]) for g in spread["guesses"]} == {("Alice", 0), ("Bob", 5)}
    page = re.sub(
        r"\s+", " ", host.get(f"/rooms/host/{room.host_token}/", HTTP_HX_REQUEST="true").content.decode()
    )
    assert 'id="board"' in page and "<html" not in page and "1 of 2 right" in page


def test_an_expired_room_is_gone_for_host_and_participants():
    host = Client()
    room = make_room(host, recipes=["keyset-pagination"])
    alice = join(room, "Alice")
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert host.get(f"/rooms/host/{room.host_token}/").status_code == 404
    assert alice.get(f"/rooms/{room.code}/").status_code == 404
    for poll in (f"/rooms/{room.code}/?bar=1", f"/rooms/{room.code}/"):  # htmx stops polling on 286
        assert alice.get(poll, HTTP_HX_REQUEST="true").status_code == 286
    assert 'id="room-bar"' not in alice.get("/").content.decode()


def test_a_recipe_step_keeps_only_the_recipes_own_parameters():
    host = Client()
    room = make_room(host, recipes=["keyset-pagination"])
    bad = host.post(f"/rooms/host/{room.host_token}/push", {"recipe": "offset-pagination"})
    assert bad.status_code == 400
    host.post(
        f"/rooms/host/{room.host_token}/push", {"recipe": "keyset-pagination", "query": "page=40&evil=1"}
    )
    alice = join(room, "Alice")
    go = alice.get(f"/rooms/{room.code}/go")
    assert go["Location"] == "/recipes/keyset-pagination/?page=40"


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_prepared_sandboxes_are_seeded_ahead_and_taken_by_joining_members():
    host = Client()
    room = make_room(host, track="onboarding")
    started = host.post(
        f"/rooms/host/{room.host_token}/prepare", {"count": "2"}, HTTP_ACCEPT="application/json"
    )
    assert started.status_code == 200 and started.json()["prepared"]["wanted"] == 2
    wait_for(lambda: PreparedSandbox.objects.filter(room=room).count() == 2)
    board = host.get(f"/rooms/host/{room.host_token}/", HTTP_ACCEPT="application/json").json()
    assert board["prepared"] == {"wanted": 2, "ready": 2, "taken": 0, "error": None, "state": "done"}
    prepared = set(PreparedSandbox.objects.values_list("role", flat=True))
    roles = set()
    for name in ("Alice", "Bob", "Carol"):
        person = join(room, name)
        roles.add(person.session.get("sandbox"))
    assert prepared < roles | {None} and None in roles  # the third found none left: made on first run
    with sandboxes.admin_engine().connect() as conn:  # seeded before anyone ran: step 1's memos table
        seeded = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = ANY(:roles)"), {"roles": list(prepared)}
        ).scalar()
    assert seeded >= 2
    assert host.post(f"/rooms/host/{room.host_token}/prepare", {"count": "0"}).status_code == 400


def test_reset_empties_and_close_drops_every_member_sandbox():
    host = Client()
    room = make_room(host, track="onboarding")
    alice = join(room, "Alice")
    alice.post("/tracks/onboarding/1/run", {"variant": "raw-update", "rows": "5", "guess-stamped": "0"})
    role = alice.session["sandbox"]
    reset = host.post(f"/rooms/host/{room.host_token}/reset", HTTP_HX_REQUEST="true")
    assert reset.status_code == 200 and b"Emptied 1 sandbox." in reset.content
    with sandboxes.admin_engine().connect() as conn:
        tables = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = :r"), {"r": role}
        ).scalar()
    assert tables == 0 and Sandbox.objects.filter(role=role).exists()
    assert alice.post(f"/rooms/host/{room.code}/close").status_code == 404  # the code is no host link
    closed = host.post(f"/rooms/host/{room.host_token}/close", HTTP_ACCEPT="application/json")
    assert closed.json() == {"closed": True, "dropped": 1}
    assert not Sandbox.objects.filter(role=role).exists()
    assert host.get(f"/rooms/host/{room.host_token}/").status_code == 404
    assert alice.get(f"/rooms/{room.code}/").status_code == 404
    for poll in (f"/rooms/{room.code}/?bar=1", f"/rooms/{room.code}/"):  # htmx stops polling on 286
        assert alice.get(poll, HTTP_HX_REQUEST="true").status_code == 286
    assert 'id="room-bar"' not in alice.get("/").content.decode()
