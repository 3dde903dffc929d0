"""Challenges answered with SQL: the track file's keys, the step's page, and the run checked."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from playground.models import Run, StepProgress
from recipes import tracks
from recipes.learning import Challenge
from tests.test_rooms import join, make_room
from tests.test_tracks import write
from tests.web import api, post

STEP = "/tracks/n-plus-one-and-pagination/7"
KEYSET = (
    "SELECT id, title, created_at FROM documents\n"
    "WHERE (created_at, id) < (SELECT created_at, id FROM documents\n"
    "                          WHERE id = (SELECT max(id) FROM documents) - 9979)\n"
    "ORDER BY created_at DESC, id DESC LIMIT 20"
)
TRACK = """
title = "By hand"
summary = "SQL of your own."

[[steps]]
recipe = "keyset-pagination"
params = { rows = 1000 }
guidance = "Line one.\\nLine two."

[steps.challenge]
goal = "Page 2 by keyset"
sql = "SELECT 1"
reference = "SELECT id FROM documents ORDER BY id LIMIT 20"
checks = [{ figure = "rows_read", at_most = 50 }, { figure = "same_rows", equals = "yes" }]
"""


def problems_of(tmp_path, text: str) -> list[str]:
    return [p.message for p in tracks.read(write(tmp_path, text))[1]]


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_a_sql_challenge_reads_from_a_track_file(tmp_path):
    track, problems = tracks.read(write(tmp_path, TRACK))
    assert problems == []
    (step,) = track.steps
    assert isinstance(step.teaching, Challenge) and step.teaching.asks_for_sql
    assert step.teaching.reference.startswith("SELECT id FROM documents")
    assert step.to_json()["challenge"]["sql"] == "SELECT 1"
    assert step.to_json()["challenge"]["compares_rows"] is True
    shipped = tracks.load(tracks.SHIPPED)[0]["n-plus-one-and-pagination"].step(7)
    assert shipped.teaching.asks_for_sql and "OFFSET 9980" in shipped.teaching.sql


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('sql = "SELECT 1"', 'sql = ""', "sql must be non-empty text"),
        ('sql = "SELECT 1"\n', "", "a reference needs sql"),
        ("LIMIT 20", "LIMIT 20; SELECT 2", "reference: must be one SELECT that only reads"),
        ('"SELECT id FROM', '"DELETE FROM documents RETURNING id --', "reference: must be one SELECT"),
        (
            '"SELECT id FROM documents',
            '"SELECT pg_sleep(60), id FROM documents',
            "reference: Statement 1 refused",
        ),
        ('"SELECT id FROM documents', '"SELECT id FROM other.documents', "names another schema"),
        ('reference = "SELECT id FROM documents ORDER BY id LIMIT 20"\n', "", "same_rows needs a reference"),
        ('equals = "yes" }', 'faster_than = "keyset" }', "faster_than compares variants"),
    ],
)
def test_a_sql_challenge_that_cannot_be_checked_is_refused(tmp_path, old, new, message):
    assert old in TRACK
    found = problems_of(tmp_path, TRACK.replace(old, new, 1))
    assert any(message in p for p in found), found


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drop_sandboxes")
def test_the_step_page_holds_the_challenge_text_and_checks_the_sql_run(client):
    page = client.get(f"{STEP}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<textarea name="sql" id="id_sql"' in html and "OFFSET 9980 LIMIT 20</textarea>" in html
    assert "Try your SQL" in html and "same rows as the reference: yes" in html

    # the starting text gives the right rows the slow way: one check of two
    tried = post(client, f"{STEP}/run", {"sql": page.context["sql"]}, HX_Request="true")
    assert tried.status_code == 200 and "</html>" not in tried.content.decode()
    shown = text_of(tried)
    assert "Not yet" in shown and "same rows as the reference: yes" in shown
    assert re.search(r"failed rows read by the main query ≤ 50: the run: [\d,]+", shown)
    assert 'id="statement-1"' in tried.content.decode()
    assert not StepProgress.objects.filter(step=7, done=True).exists()

    # the keyset query: the same rows, a handful read
    passed = api(client, "/api/tracks/n-plus-one-and-pagination/7/run", {"sql": KEYSET})
    data = passed.json()
    assert passed.status_code == 200 and data["ok"], data.get("error")
    assert data["verdict"]["passed"], data["verdict"]
    assert data["metrics"]["same_rows"] == "yes" and data["query_count"] == 1
    assert data["progress"]["done"] == [7]
    listed = client.get("/api/tracks").json()["tracks"]
    assert next(t for t in listed if t["slug"] == "n-plus-one-and-pagination")["progress"]["done"] == [7]
    assert set(Run.objects.values_list("recipe", flat=True)) == {"sql"}
    assert Run.objects.count() == 2
    assert [r.rows_read for r in Run.objects.order_by("pk")] == [10_000, 22]  # OFFSET, then keyset
    exported = client.get("/tracks/n-plus-one-and-pagination/export")
    assert exported.status_code == 200 and "Write the keyset query yourself" in exported.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drop_sandboxes")
def test_refused_sql_at_a_step_is_a_400_and_records_nothing(client):
    refused = post(client, f"{STEP}/run", {"sql": "SET statement_timeout = 0"}, HX_Request="true")
    assert refused.status_code == 400
    assert "Nothing ran." in text_of(refused) and "SET / RESET is not allowed" in text_of(refused)
    assert "SET statement_timeout = 0</textarea>" not in refused.content.decode()  # a partial
    whole = post(client, f"{STEP}/run", {"sql": "LISTEN x"})
    assert whole.status_code == 400 and "LISTEN x</textarea>" in whole.content.decode()
    assert api(client, "/api/tracks/n-plus-one-and-pagination/7/run", {}).status_code == 400
    body = api(client, "/api/tracks/n-plus-one-and-pagination/7/run", {"sql": "DO $$ $$"}).json()
    assert "A DO block is not allowed" in body["errors"]["sql"][0]
    assert not Run.objects.exists() and not StepProgress.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drop_sandboxes")
def test_a_room_host_sees_who_passed_a_sql_step():
    host = Client()
    room = make_room(host, track="n-plus-one-and-pagination")
    host.post(f"/rooms/host/{room.host_token}/push", {"number": "7"})
    alice, bob = (join(room, n) for n in ("Alice", "Bob"))
    offset = tracks.load(tracks.SHIPPED)[0]["n-plus-one-and-pagination"].step(7).teaching.sql
    for person, sql in ((alice, KEYSET), (bob, offset)):
        assert person.post(f"{STEP}/run", {"sql": sql}).status_code == 200
    board = host.get(f"/rooms/host/{room.host_token}/", HTTP_ACCEPT="application/json").json()
    seen = {m["name"]: m for m in board["members"]}
    assert seen["Alice"]["done"] is True and seen["Bob"]["done"] is False
    assert seen["Alice"]["run"]["ok"] and seen["Bob"]["run"]["ok"]
