"""Predict, then run; challenges: as a form (JavaScript off), as an htmx partial, and as JSON."""

from __future__ import annotations

import re

import pytest

from playground.models import Run
from tests.web import api, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_sandboxes")]


def text_of(html: bytes) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.decode()))


def test_the_recipe_page_asks_with_the_form_values_and_lists_challenges(client):
    page = client.get("/recipes/eager-loading/?authors=80")
    assert page.status_code == 200
    html = page.content.decode()
    assert "How many queries will lazy loading send for 80 authors?" in html
    assert 'name="guess-lazy-queries"' in html
    assert 'formaction="/recipes/eager-loading/predict"' in html
    assert "Load 50 authors with their books in at most 2 queries" in html
    assert 'name="challenge" value="two-queries"' in html


def test_a_prediction_without_javascript_shows_the_guess_beside_the_truth(client):
    response = post(
        client,
        "/recipes/eager-loading/predict",
        {"variant": "joinedload", "authors": "12", "question": "lazy-queries", "guess-lazy-queries": "5"},
    )
    assert response.status_code == 200
    shown = text_of(response.content)
    assert "</html>" in response.content.decode()
    assert "How many queries will lazy loading send for 12 authors?" in shown
    assert re.search(r"5 your guess 13 what the run did", shown), shown[:600]
    assert "Not this time : off by 8" in shown
    assert Run.objects.get().variant == "lazy"  # the question's own variant ran


def test_a_right_prediction_through_htmx_is_the_results_partial(client):
    response = post(
        client,
        "/recipes/eager-loading/predict",
        {"authors": "12", "question": "lazy-queries", "guess-lazy-queries": "13"},
        HX_Request="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "</html>" not in html and 'id="results"' in html
    assert 'class="learn-result right"' in html
    assert "Right" in text_of(response.content)


def test_a_prediction_as_json_adds_the_answer_to_the_run(client):
    response = api(
        client,
        "/api/recipes/exists-count/predict",
        {"question": "wire-rows", "guess": 100, "params": {"rows": 1000, "match": 10}},
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["variant"] == "len-all" and data["query_count"] == 1
    answer = data["answer"]
    assert answer["truth"] == 100 and answer["guess"] == 100 and answer["right"] is True
    assert answer["off_by"] == "exactly"
    assert answer["asked"].startswith("len-all counts the admins among 1,000 users (10% are admins)")
    assert data["run_id"] == Run.objects.get().pk


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"question": "nope", "guess": 1}, {"question"}),
        ({"question": "lazy-queries", "guess": "many"}, {"guess"}),
        ({"question": "lazy-queries"}, {"guess"}),
        ({"question": "lazy-queries", "guess": 3, "params": {"authors": 0}}, {"authors"}),
        ({"question": "nope", "guess": 3, "params": {"authors": 0}}, {"question", "authors"}),
    ],
)
def test_a_bad_prediction_is_400_field_by_field_and_runs_nothing(client, body, errors):
    response = api(client, "/api/recipes/eager-loading/predict", body)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == errors
    assert not Run.objects.exists()


def test_a_bad_guess_in_the_form_is_listed_and_nothing_runs(client):
    response = post(
        client,
        "/recipes/keyset-pagination/predict",
        {"question": "sort", "guess-sort": "perhaps", "rows": "1000"},
        HX_Request="true",
    )
    assert response.status_code == 400
    assert "Pick one of: yes, no." in text_of(response.content)
    assert not Run.objects.exists()


def test_a_challenge_sets_its_parameters_and_reports_each_check(client):
    response = post(
        client,
        "/recipes/eager-loading/challenge",
        {"variant": "lazy", "authors": "7", "challenge": "two-queries"},
        HX_Request="true",
    )
    assert response.status_code == 200
    shown = text_of(response.content)
    assert "Challenge: Load 50 authors with their books in at most 2 queries" in shown
    assert "Not yet" in shown
    assert "failed queries ≤ 2: the run: 51, 49 over" in shown
    assert "passed errors ≤ 0" in shown
    assert Run.objects.get().params["authors"] == 50


def test_a_challenge_with_a_time_ratio_runs_the_other_variant_too(client):
    response = api(
        client,
        "/api/recipes/bulk-insert/challenge",
        {"challenge": "five-times-faster", "variant": "copy", "params": {"batch_size": 1000}},
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["verdict"]["passed"] is True
    assert set(data["baselines"]) == {"add-loop"}
    assert data["baselines"]["add-loop"]["params"]["rows"] == 10_000
    ratio = data["verdict"]["checks"][0]
    assert ratio["check"] == "5× faster than add-loop (insert ms)"
    assert ratio["actual"] >= 5
    assert sorted(Run.objects.values_list("variant", flat=True)) == ["add-loop", "copy"]


def test_an_unknown_challenge_is_400(client):
    response = api(client, "/api/recipes/upsert/challenge", {"challenge": "win"})
    assert response.status_code == 400
    assert "unknown challenge 'win'" in response.json()["errors"]["challenge"][0]


def test_the_api_lists_questions_and_challenges(client):
    recipes = {r["slug"]: r for r in client.get("/api/recipes").json()["recipes"]}
    eager = recipes["eager-loading"]
    assert [q["slug"] for q in eager["questions"]] == ["lazy-queries", "joined-rows"]
    assert eager["questions"][0]["variant"] == "lazy" and eager["questions"][0]["kind"] == "number"
    assert eager["challenges"][0]["params"] == {"authors": 50, "direction": "authors-books"}
    assert eager["challenges"][0]["checks"] == ["queries ≤ 2", "errors ≤ 0"]


def checked_version(html: bytes) -> list[bytes]:
    """The `pg` radio buttons the page shows checked."""
    tags = re.findall(rb'<input[^>]*name="pg"[^>]*>', html)
    return [re.search(rb'value="(\d+)"', tag).group(1) for tag in tags if b"checked" in tag]


def test_a_prediction_runs_on_the_version_picked_and_the_page_keeps_it(client):
    response = post(
        client,
        "/recipes/eager-loading/predict",
        {"authors": "12", "question": "lazy-queries", "guess-lazy-queries": "13", "pg": "16"},
    )
    assert response.status_code == 200, response.content[:400]
    assert "Ran on PostgreSQL 16." in text_of(response.content)
    assert checked_version(response.content) == [b"16"]
    assert Run.objects.get().result["server_version"].startswith("16.")
    as_json = api(
        client,
        "/api/recipes/eager-loading/predict",
        {"question": "lazy-queries", "guess": 13, "params": {"authors": 12}, "pg": 16},
    )
    assert as_json.status_code == 200 and as_json.json()["server"] == "pg16"
    assert as_json.json()["answer"]["right"] is True  # the same truth on either version


def test_a_challenge_and_its_baselines_run_on_the_version_picked(client):
    response = api(
        client,
        "/api/recipes/bulk-insert/challenge",
        {"challenge": "five-times-faster", "variant": "copy", "params": {"batch_size": 1000}, "pg": 16},
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["server"] == "pg16" and data["baselines"]["add-loop"]["server"] == "pg16"
    assert {r["server_version"][:3] for r in Run.objects.values_list("result", flat=True)} == {"16."}
    page = post(
        client,
        "/recipes/eager-loading/challenge",
        {"variant": "lazy", "challenge": "two-queries", "pg": "16"},
    )
    assert page.status_code == 200 and checked_version(page.content) == [b"16"]
    assert Run.objects.order_by("-created_at").first().result["server"] == "pg16"


@pytest.mark.parametrize("path", ["predict", "challenge"])
def test_a_version_not_offered_is_400_on_the_field_and_runs_nothing(client, path):
    body = {"question": "lazy-queries", "guess": 3, "challenge": "two-queries", "pg": 99}
    response = api(client, f"/api/recipes/eager-loading/{path}", body)
    assert response.status_code == 400 and "16 and 18" in response.json()["errors"]["pg"][0]
    page = post(client, f"/recipes/eager-loading/{path}", {**body, "guess-lazy-queries": "3"})
    assert page.status_code == 400 and b"is not offered here" in page.content
    assert not Run.objects.exists()
