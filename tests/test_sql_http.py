"""The SQL scratchpad over HTTP: page, htmx partial and JSON, refusals, history and diff."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import Run, Sandbox

pytestmark = pytest.mark.django_db(transaction=True)

JSON = {"HTTP_ACCEPT": "application/json"}
SETUP = (
    "CREATE TABLE pets (id int PRIMARY KEY, name text NOT NULL); "
    "CREATE INDEX pets_name ON pets (name); "
    "INSERT INTO pets SELECT i, 'pet ' || i FROM generate_series(1, 5000) i; ANALYZE pets; "
    "SELECT id, name FROM pets WHERE name = 'pet 7'"
)


@pytest.fixture
def client() -> Client:
    client = Client()
    yield client
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


def run_json(client: Client, sql: str):
    return client.post("/sql/run", {"sql": sql}, content_type="application/json", **JSON)


def test_a_submission_runs_each_statement_and_lands_in_the_history(client):
    response = run_json(client, SETUP)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["ok"] and data["recipe"] == "sql"
    results = data["metrics"]["results"]
    assert [r["kind"] for r in results] == ["CREATE TABLE", "CREATE INDEX", "INSERT", "ANALYZE", "SELECT"]
    assert results[2]["rowcount"] == 5000 and results[4]["rows"] == [[7, "pet 7"]]
    assert "pets_name" in str(data["plan"]["json"])  # the plan of the last SELECT, by the index
    stored = Run.objects.get()
    assert stored.recipe == "sql" and stored.params == {"sql": SETUP} and stored.rows_read == 1

    tables = client.get("/sql/", **JSON).json()["tables"]
    assert [t["name"] for t in tables] == ["pets"]
    assert [c["name"] for c in tables[0]["columns"]] == ["id", "name"]
    assert {i["name"] for i in tables[0]["indexes"]} == {"pets_pkey", "pets_name"}
    assert tables[0]["estimated_rows"] == 5000


def test_the_page_the_partial_and_a_reopened_run(client):
    page = client.get("/sql/?sql=SELECT+42")
    assert page.status_code == 200 and b"</html>" in page.content and b">SELECT 42</textarea>" in page.content
    partial = client.post("/sql/run", {"sql": SETUP}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"</html>" not in partial.content
    html = partial.content.decode()
    assert 'id="statement-5"' in html and "pet 7" in html and "Index Scan" in html
    assert "pets_name" in client.get("/sql/").content.decode()  # listed with its index

    run_id = Run.objects.get().pk
    reopened = client.get(f"/runs/{run_id}/").content.decode()
    assert "A stored run" in reopened and "pet 7" in reopened and "<textarea" in reopened
    history = client.get("/history").content.decode()
    assert "sql · sql" in history and "/sql/?sql=CREATE+TABLE+pets" in history


def test_two_scratchpad_runs_diff_like_any_runs(client):
    run_json(client, SETUP.replace("CREATE INDEX pets_name ON pets (name); ", ""))
    run_json(client, "CREATE INDEX pets_name ON pets (name); SELECT id, name FROM pets WHERE name = 'pet 7'")
    a, b = Run.objects.order_by("pk").values_list("pk", flat=True)
    diff = client.get(f"/runs/diff?a={a}&b={b}", **JSON).json()
    assert any("Rows read by the plan: 5,000 → 1" in line for line in diff["changes"]), diff


def test_refused_sql_is_a_400_naming_the_problem_and_nothing_runs(client):
    response = run_json(client, "CREATE TABLE marker (i int); SET statement_timeout = 0")
    assert response.status_code == 400
    (message,) = response.json()["errors"]["sql"]
    assert message.startswith("Statement 2 refused: SET / RESET is not allowed")
    assert not Run.objects.exists()
    box = Sandbox.objects.get()
    with sandboxes.engine_for(box).connect() as conn:
        assert conn.execute(text("SELECT to_regclass('marker')")).scalar() is None

    page = client.post("/sql/run", {"sql": "LISTEN x"}, HTTP_HX_REQUEST="true")
    assert page.status_code == 400 and b"Nothing ran." in page.content
    assert b"LISTEN is not allowed" in page.content
    assert client.post("/sql/run", {"sql": "x" * 20_001}, **JSON).status_code == 400
    assert run_json(client, "").status_code == 400
    bad = client.post("/sql/run", {"nope": 1}, content_type="application/json", **JSON)
    assert bad.status_code == 400 and "sql" in bad.json()["errors"]


def test_a_failing_statement_is_a_failed_run_with_its_message(client):
    data = run_json(client, "SELECT 1; SELECT * FROM missing").json()
    assert not data["ok"] and "missing" in data["error"]
    assert data["metrics"]["results"][1]["error"].startswith('relation "missing" does not exist')


def test_the_catalog_listing_shows_only_this_sandbox(client):
    other = Client()
    run_json(other, "CREATE TABLE theirs (secret text)")
    run_json(client, "CREATE TABLE mine (i int)")
    assert [t["name"] for t in client.get("/sql/", **JSON).json()["tables"]] == ["mine"]
    assert Client().get("/sql/", **JSON).json() == {"tables": []}  # no sandbox yet, none made
    assert Sandbox.objects.count() == 2


def test_edit_a_recipe_run_as_sql_run_it_and_compare(client):
    page = client.post(
        "/recipes/keyset-pagination/run", {"variant": "keyset", "rows": "1000", "page": "3"}
    ).content.decode()
    link = html.unescape(re.search(r'id="edit-as-sql" href="([^"]+)"', page).group(1))
    query = parse_qs(urlsplit(link).query)
    recipe_run = Run.objects.get()
    assert query["from"] == [str(recipe_run.pk)]
    (sql,) = query["sql"]
    assert "%(" not in sql and "LIMIT" in sql.upper()
    assert f'name="from" value="{recipe_run.pk}"' in client.get(link).content.decode()
    assert "edit as SQL" in page  # every statement of the run is one click away

    response = client.post("/sql/run", {"sql": sql, "from": recipe_run.pk}, **JSON)
    data = response.json()
    assert data["ok"], data["error"]
    ids = [r[0] for r in recipe_run.result["rows"]["data"]]
    assert [r[0] for r in data["rows"]["data"]] == ids  # the same rows, by hand
    diff = client.get(data["compare_url"], **JSON).json()
    assert diff["a"]["recipe"] == "keyset-pagination" and diff["b"]["recipe"] == "sql"
    assert "Same plan shape." in diff["changes"]


def test_an_htmx_run_sends_the_tables_list_anew_beside_its_results(client):
    """A table made by the submission shows in the list at once, not after a reload."""
    client.get("/sql/")
    response = client.post("/sql/run", {"sql": SETUP}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    page = response.content.decode()
    oob = r'<fieldset class="tables" id="sandbox-tables" hx-swap-oob="true">(.*?)</fieldset>'
    tables = re.search(oob, page, re.S)
    assert tables is not None, page[:500]
    assert "<strong>pets</strong>" in tables.group(1) and "pets_name" in tables.group(1)
    whole = client.get("/sql/").content.decode()
    assert "hx-swap-oob" not in whole and whole.count('id="sandbox-tables"') == 1
