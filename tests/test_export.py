"""Take it with you: a run, a comparison and a track as Markdown, a plan as JSON for plan viewers."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from playground.models import Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_sandboxes")]


@pytest.fixture
def client() -> Client:
    return Client()  # these tests read pages and exports; none of them posts a form


def run(client: Client, slug: str, **data: str):
    return client.post(f"/recipes/{slug}/run", data, headers={"Accept": "application/json"}).json()


def test_a_result_links_to_its_exports(client):
    page = client.post("/recipes/keyset-pagination/run", {"variant": "keyset", "rows": "1000", "page": "3"})
    stored = Run.objects.get()
    html = page.content.decode()
    assert f'href="/runs/{stored.pk}/export"' in html
    assert f'href="/runs/{stored.pk}/plan.json"' in html
    reopened = client.get(f"/runs/{stored.pk}/").content.decode()
    assert f'href="/runs/{stored.pk}/export"' in reopened


def test_a_run_as_markdown_holds_statements_parameters_figures_and_plan(client):
    data = run(client, "eager-loading", variant="lazy", authors="6")
    assert data["run_id"] == Run.objects.get().pk
    md = client.get(f"/runs/{data['run_id']}/export", headers={"Accept": "application/json"}).json()
    text = md["markdown"]
    assert md["filename"] == f"eager-loading-lazy-run-{data['run_id']}.md"
    assert text.startswith("# Kill N+1 with eager loading · lazy\n")
    assert "Parameters: `authors = 6`, `books_per_author = 5`, `direction" in text
    assert "| queries | 7 |" in text
    assert "sent 6 times" in text and 'first parameters: `{"param_1": 1}`' in text
    assert "```sql\n   SELECT authors.id," in text
    assert data["plan"]["text"].splitlines()[0] in text
    assert (
        "Run it again: <http://testserver/recipes/eager-loading/?variant=lazy&authors=6&books_per_author=5"
        in text
    )

    page = client.get(f"/runs/{data['run_id']}/export")
    assert page["Content-Type"].startswith("text/html")
    assert '<textarea class="export"' in page.content.decode()
    download = client.get(f"/runs/{data['run_id']}/export?download=1")
    assert download["Content-Type"] == "text/markdown; charset=utf-8"
    assert download["Content-Disposition"] == f'attachment; filename="{md["filename"]}"'
    assert download.content.decode() == text


def test_a_plan_for_viewers_is_the_raw_explain_json_and_the_query(client):
    data = run(client, "offset-pagination", variant="offset", rows="1000", page="4")
    response = client.get(f"/runs/{data['run_id']}/plan.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    plan = response.json()
    assert set(plan) == {"title", "plan", "query"}
    assert json.loads(plan["plan"]) == data["plan"]["json"]
    assert json.loads(plan["plan"])[0]["Plan"]["Node Type"] == "Limit"
    main = next(s for s in data["statements"] if s.get("main"))
    assert plan["query"].startswith(main["sql"])
    assert "-- parameters:" in plan["query"]


def test_a_run_without_a_plan_has_no_plan_to_give(client):
    data = run(client, "upsert", variant="on-conflict", conflict_target="name")
    assert data["ok"] is False and data["plan"] is None
    response = client.get(f"/runs/{data['run_id']}/plan.json", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json() == {"error": "this run has no plan"}


def test_another_session_cannot_export_a_run(client):
    data = run(client, "exists-count", variant="count", rows="1000")
    other = Client()
    assert other.get(f"/runs/{data['run_id']}/export").status_code == 404
    assert other.get(f"/runs/{data['run_id']}/plan.json").status_code == 404


def test_a_comparison_as_markdown(client):
    page = client.post("/recipes/exists-count/compare", {"variant": "count", "rows": "1000"})
    found = re.search(r'href="/runs/export\?ids=([0-9,]+)"', page.content.decode())
    assert found, "the comparison links to its export"
    ids = found.group(1)
    assert len(ids.split(",")) == 3
    text = client.get(f"/runs/export?ids={ids}", headers={"Accept": "application/json"}).json()["markdown"]
    assert text.startswith("# Efficient exists and count: 3 runs compared")
    assert "| variant | ok | queries | rows fetched | rows read | wall ms | database ms |" in text
    for variant in ("len-all", "count", "exists"):
        assert f"| {variant} | yes | 1 |" in text
        assert f"## Efficient exists and count · {variant}" in text


@pytest.mark.parametrize("ids", ["", "a,b", ",".join(str(i) for i in range(1, 20))])
def test_a_comparison_export_needs_run_ids(client, ids):
    response = client.get(f"/runs/export?ids={ids}", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert "ids" in response.json()["errors"]


def test_a_track_as_markdown(client):
    client.get("/tracks/onboarding/1/")
    client.post("/tracks/onboarding/1/run", {"variant": "raw-update", "rows": "5", "guess-stamped": "5"})
    client.post("/tracks/onboarding/2/run", {"variant": "exists", "rows": "10000"})
    text = client.get("/tracks/onboarding/export", headers={"Accept": "application/json"}).json()["markdown"]
    assert text.startswith("# First steps: one recipe from each section\n\n2 of 4 steps done")
    assert "first guess right on 0 of 1 predictions" in text
    assert "**Question:** raw-update writes 5 memo(s). On how many will updated_at move?" in text
    assert "Guess: 5 · the run: 0 · not this time, off by 5" in text
    assert (
        '**Challenge:** Answer "is there any admin?" reading at most 100 rows and fetching one: passed'
        in text
    )
    assert "### Timestamp mixin · raw-update" in text and "UPDATE memos\n" in text
    assert (
        "## Step 4: Performance: how many connections?\n\nRecipe: Connection pool settings\n\nNot tried yet."
        in text
    )
    page = client.get("/tracks/onboarding/").content.decode()
    assert 'href="/tracks/onboarding/export"' in page
