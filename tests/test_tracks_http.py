"""Tracks over HTTP: the pages, a step run as a form, as htmx and as JSON, and progress in the database."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client, override_settings

from playground.models import StepProgress
from tests.test_tracks import GOOD
from tests.web import api, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_sandboxes")]

ONBOARDING = "/tracks/onboarding"


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_shelf_and_the_list_link_to_every_track(client):
    shelf = client.get("/").content.decode()
    for slug in (
        "onboarding",
        "n-plus-one-and-pagination",
        "writing-without-losing-data",
        "indexes-that-get-used",
    ):
        assert f'href="/tracks/{slug}/"' in shelf
    listed = client.get("/tracks/", headers={"Accept": "application/json"}).json()["tracks"]
    onboarding = next(t for t in listed if t["slug"] == "onboarding")
    assert onboarding["steps"] == 4 and onboarding["progress"]["done"] == []
    assert onboarding["resume"] == "/tracks/onboarding/1/"
    assert client.get("/api/tracks").json() == {"tracks": listed}


def test_a_step_page_presets_the_form_and_asks_its_question(client):
    page = client.get(f"{ONBOARDING}/1/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="raw-update" checked' in html
    assert "raw-update writes 5 memo(s). On how many will updated_at move?" in html
    assert "This write is a plain SQL UPDATE" in html
    assert 'action="/tracks/onboarding/1/run"' in html
    assert client.get(f"{ONBOARDING}/9/").status_code == 404
    data = client.get(f"{ONBOARDING}/1/", headers={"Accept": "application/json"}).json()
    assert data["step"]["question"]["slug"] == "stamped"
    assert data["step"]["params"] == {"rows": 5}


def test_a_wrong_guess_without_javascript_still_completes_the_step(client):
    response = post(
        client, f"{ONBOARDING}/1/run", {"variant": "raw-update", "rows": "5", "guess-stamped": "5"}
    )
    assert response.status_code == 200
    shown = text_of(response)
    assert "5 your guess 0 what the run did" in shown
    assert "Not this time : off by 5" in shown
    assert "1 of 4 steps done" in shown and "first guess right 0 of 1" in shown
    assert 'href="/tracks/onboarding/2/"' in response.content.decode()
    row = StepProgress.objects.get()
    assert (row.track, row.step, row.done, row.first_right, row.attempts) == ("onboarding", 1, True, False, 1)
    assert row.outcome["answer"]["truth"] == 0 and row.run is not None

    again = post(client, f"{ONBOARDING}/1/run", {"variant": "raw-update", "rows": "5", "guess-stamped": "0"})
    assert "Right" in text_of(again)
    row.refresh_from_db()
    assert (row.first_right, row.attempts) == (False, 2)  # the first guess is the one scored


def test_a_step_through_htmx_updates_the_progress_bar_out_of_band(client):
    response = post(
        client,
        f"{ONBOARDING}/1/run",
        {"variant": "raw-update", "rows": "5", "guess-stamped": "0"},
        HX_Request="true",
    )
    html = response.content.decode()
    assert "</html>" not in html and 'id="results"' in html
    assert 'id="track-progress" hx-swap-oob="true"' in html
    assert 'value="1"' in html.split('id="track-progress"')[1].split("</div>")[0]


def test_a_challenge_step_is_done_only_once_passed(client):
    failed = post(client, f"{ONBOARDING}/2/run", {"variant": "count", "rows": "10000"})
    assert "Not yet" in text_of(failed) and "Not passed yet" in text_of(failed)
    assert StepProgress.objects.get().done is False
    passed = post(client, f"{ONBOARDING}/2/run", {"variant": "exists", "rows": "10000"})
    assert "Passed" in text_of(passed)
    row = StepProgress.objects.get()
    assert (row.done, row.attempts, row.first_right) == (True, 2, None)
    page = client.get(f"{ONBOARDING}/").content.decode()
    assert 'href="/tracks/onboarding/1/">Resume at step 1' in page


def test_a_step_through_the_api_and_progress_seen_from_another_client(client):
    response = api(client, "/api/tracks/onboarding/3/run", {"guess": 4})
    assert response.status_code == 200, response.content
    data = response.json()
    assert (
        data["variant"] == "add-all"
        and data["params"]["rows"] == 2000
        and data["params"]["batch_size"] == 500
    )
    assert data["answer"]["truth"] == 4 and data["answer"]["right"] is True
    assert data["progress"]["done"] == [3] and data["next"] == "/tracks/onboarding/4/"

    other = Client()  # another worker or instance: nothing but the session cookie is shared
    other.cookies["sessionid"] = client.cookies["sessionid"].value
    listed = other.get("/api/tracks").json()["tracks"]
    assert next(t for t in listed if t["slug"] == "onboarding")["progress"]["done"] == [3]


@pytest.mark.parametrize(
    ("path", "body", "status", "key"),
    [
        ("/api/tracks/onboarding/3/run", {"guess": "lots"}, 400, "guess"),
        ("/api/tracks/onboarding/3/run", {"guess": 3, "params": {"rows": 1}}, 400, "rows"),
        ("/api/tracks/onboarding/9/run", {"guess": 3}, 404, None),
        ("/api/tracks/nope/1/run", {"guess": 3}, 404, None),
    ],
)
def test_a_refused_step_says_why_and_records_nothing(client, path, body, status, key):
    response = api(client, path, body)
    assert response.status_code == status
    if key:
        assert key in response.json()["errors"]
    else:
        assert "error" in response.json()
    assert not StepProgress.objects.exists()


def test_a_team_track_from_the_tracks_folder(client, tmp_path):
    (tmp_path / "our-track.toml").write_text(GOOD, encoding="utf-8")
    with override_settings(PLAYGROUND={**settings.PLAYGROUND, "TRACKS_DIR": tmp_path}):
        assert [t["slug"] for t in client.get("/api/tracks").json()["tracks"]] == ["our-track"]
        response = api(client, "/api/tracks/our-track/2/run", {"variant": "exists"})
        assert response.status_code == 200, response.content
        verdict = response.json()["verdict"]
        assert verdict["goal"] == "Count with one row fetched" and verdict["passed"] is True
        assert [c["check"] for c in verdict["checks"]] == ["rows fetched ≤ 1", "queries: 1"]
