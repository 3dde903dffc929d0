"""The HTTP interface of DESIGN.md, exercised through Django's test client against real sandboxes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import Run, Sandbox
from playground.running.service import SESSION_KEY

pytestmark = pytest.mark.django_db(transaction=True)

SMALL = 1000
"""Table rows for runs: the smallest size the recipes accept."""

RUN_KEYS = {
    "recipe",
    "variant",
    "params",
    "ok",
    "error",
    "rows",
    "statements",
    "query_count",
    "plan",
    "elapsed_ms",
    "db_ms",
    "notes",
    "metrics",
}
STATEMENT_KEYS = {"sql", "parameters", "duration_ms", "rowcount", "kind", "batches"}
MIN_ONE = "Ensure this value is greater than or equal to 1."


@pytest.fixture(autouse=True)
def _drop_sandboxes(transactional_db) -> Iterator[None]:
    """Every sandbox a test's sessions provisioned is dropped (schema, role, row) afterwards."""
    yield
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


@pytest.fixture
def client() -> Client:
    """A browser-like client: CSRF is enforced, as in production."""
    return Client(enforce_csrf_checks=True)


def csrf_token(client: Client) -> str:
    if "csrftoken" not in client.cookies:
        assert client.get("/api/recipes").status_code == 200
    return client.cookies["csrftoken"].value


def api_run(client: Client, slug: str, body: Any, *, csrf: bool = True, raw: bool = False):
    headers = {"X-CSRFToken": csrf_token(client)} if csrf else {}
    return client.post(
        f"/api/recipes/{slug}/run",
        data=body if raw else json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def keyset(client: Client, **params: Any):
    return api_run(client, "keyset-pagination", {"variant": "keyset", "params": {"rows": SMALL, **params}})


def form_run(client: Client, slug: str, data: dict[str, Any], **headers: str):
    return client.post(
        f"/recipes/{slug}/run",
        data={"rows": SMALL, **data},
        headers={"X-CSRFToken": csrf_token(client), **headers},
    )


def _text(html: str) -> str:
    """The page's text without tags (the source block is syntax-highlighted)."""
    return re.sub(r"<[^>]+>", "", html)


def documents_in(role: str) -> int:
    box = Sandbox.objects.get(role=role)
    with sandboxes.engine_for(box).connect() as conn:
        return conn.execute(text("SELECT count(*) FROM documents")).scalar_one()


# --- pages ----------------------------------------------------------------------------------
def test_shelf_lists_recipes_by_section(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h2>Reading</h2>" in html
    assert 'href="/recipes/keyset-pagination/"' in html
    assert "Keyset pagination" in html
    assert "Offset pagination" in html
    assert "csrftoken" in response.cookies
    # The summaries are docstrings: their hard wraps must not become line breaks mid-sentence.
    assert not re.search(r"(?<!<br>)<br>(?!<br>)", html)


def test_recipe_page_shows_the_form_and_the_code_of_the_default_variant(client):
    response = client.get("/recipes/keyset-pagination/")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("page", "size", "rows", "index", "pages"):
        assert f'name="{name}"' in html, name
    assert html.count('type="radio" name="variant"') == 3
    assert 'value="keyset" checked' in html
    assert "def keyset(run, p):" in _text(html)
    summary = html.split('<div class="summary">', 1)[1].split("</div>", 1)[0]
    assert summary.count("<p>") == 2 and "<br>" not in summary
    assert "Keyset (seek) pagination: continue after the last row seen." in summary
    assert "Press <strong>Run</strong>" in html
    assert not Sandbox.objects.exists()


def test_query_string_prefills_the_form(client):
    response = client.get("/recipes/keyset-pagination/?page=7&index=none&variant=keyset-mismatched-order")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="page" value="7"' in html
    assert '<option value="none" selected>' in html
    assert '<option value="composite" selected>' not in html
    assert 'value="keyset-mismatched-order" checked' in html
    assert "def keyset_mismatched_order" in _text(html)
    assert 'class="field-error"' not in html


def test_bad_query_string_shows_the_error_and_runs_nothing(client):
    response = client.get("/recipes/keyset-pagination/?page=abc")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="err-page"' in html
    assert "Enter a whole number." in html
    assert "Nothing ran" in html
    assert 'id="query-count"' not in html
    assert not Sandbox.objects.exists()


def test_unknown_recipe_page_is_404(client):
    assert client.get("/recipes/nope/").status_code == 404


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["app_database"] == body["sandbox_database"] == "ok"


# --- the recipe list ------------------------------------------------------------------------
def test_api_lists_recipes_with_variants_and_parameters(client):
    response = client.get("/api/recipes")
    assert response.status_code == 200
    by_slug = {r["slug"]: r for r in response.json()["recipes"]}
    assert {"keyset-pagination", "offset-pagination"} <= set(by_slug)

    ks = by_slug["keyset-pagination"]
    assert ks["title"] == "Keyset pagination"
    assert ks["section"] == "Reading"
    assert [v["slug"] for v in ks["variants"]] == [
        "keyset",
        "keyset-mismatched-order",
        "keyset-created-at-only",
    ]
    params = {p["name"]: p for p in ks["parameters"]}
    assert set(params) == {"page", "size", "rows", "index", "pages"}
    for p in params.values():
        assert {"name", "type", "default", "min", "max", "choices", "help"} <= set(p)
    assert params["page"]["type"] == "int"
    assert params["page"]["min"] == 1
    assert params["page"]["default"] == 1
    assert params["rows"]["min"] == SMALL
    assert params["index"]["type"] == "choice"
    assert params["index"]["choices"] == ["composite", "created_at", "none"]
    assert params["index"]["default"] == "composite"

    off = by_slug["offset-pagination"]
    assert [v["slug"] for v in off["variants"]] == ["offset", "offset-unordered", "offset-created-at-only"]
    assert {p["name"] for p in off["parameters"]} == {"page", "size", "rows", "index", "pages"}


# --- running through the JSON API ----------------------------------------------------------
def test_api_run_returns_the_whole_run_result(client):
    response = keyset(client, page=3, size=10)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= RUN_KEYS
    assert body["recipe"] == "keyset-pagination"
    assert body["variant"] == "keyset"
    assert body["params"] == {"page": 3, "size": 10, "rows": SMALL, "index": "composite", "pages": 5}
    assert body["ok"] is True and body["error"] is None

    rows = body["rows"]
    assert set(rows) >= {"columns", "data", "total", "truncated"}
    assert rows["columns"] == ["id", "title", "created_at"]
    assert rows["total"] == len(rows["data"]) == 10
    assert rows["truncated"] is False
    ids = [r[0] for r in rows["data"]]
    assert ids == sorted(ids, reverse=True)

    assert body["statements"]
    for s in body["statements"]:
        assert set(s) >= STATEMENT_KEYS, s
    queries = [s for s in body["statements"] if s["kind"] == "query"]
    assert body["query_count"] == len(queries) == 1
    assert queries[0]["rowcount"] == 10
    assert any(s["kind"] == "explain" for s in body["statements"])

    assert set(body["plan"]) >= {"json", "text"}
    assert body["plan"]["json"][0]["Plan"]["Node Type"] == "Limit"
    assert "Execution Time" in body["plan"]["text"]
    assert body["elapsed_ms"] > 0 and body["db_ms"] > 0
    assert isinstance(body["notes"], list) and body["notes"]
    assert isinstance(body["metrics"], dict) and "next_cursor" in body["metrics"]
    assert any("seeded documents" in line for line in body["setup"])

    assert Run.objects.filter(recipe="keyset-pagination", variant="keyset", ok=True).count() == 1
    stored = Run.objects.select_related("sandbox").get(pk=body["run_id"])
    assert stored.result == {**body, "run_id": None}  # stored before its id was known
    assert (stored.recipe, stored.variant, stored.params, stored.ok) == (
        "keyset-pagination",
        "keyset",
        body["params"],
        True,
    )
    assert (stored.query_count, stored.elapsed_ms, stored.db_ms) == (1, body["elapsed_ms"], body["db_ms"])
    assert stored.rows_read == body["figures"]["rows_read"] and stored.sweep is None
    assert stored.sandbox.role == client.session[SESSION_KEY]
    assert stored.created_at <= timezone.now() and stored.created_at > timezone.now() - timedelta(minutes=1)


def test_api_run_without_the_csrf_header_is_403(client):
    response = api_run(client, "keyset-pagination", {"variant": "keyset", "params": {}}, csrf=False)
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    assert not Sandbox.objects.exists()


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"page": 0}, "page", MIN_ONE),
        ({"page": 50_001}, "page", "Ensure this value is less than or equal to 50000."),
        ({"size": "x"}, "size", "Enter a whole number."),
        ({"page": 2.5}, "page", "Enter a whole number."),
        ({"rows": 10}, "rows", "Ensure this value is greater than or equal to 1000."),
        (
            {"index": "bogus"},
            "index",
            "Select a valid choice. bogus is not one of the available choices.",
        ),
    ],
)
def test_api_run_bad_parameter_is_400_with_field_errors(client, params, field, message):
    response = api_run(client, "keyset-pagination", {"variant": "keyset", "params": params})
    assert response.status_code == 400
    assert response.json() == {"errors": {field: [message]}}
    assert not Sandbox.objects.exists()


def test_api_run_page_zero_matches_the_documented_shape(client):
    response = api_run(client, "keyset-pagination", {"variant": "keyset", "params": {"page": 0, "size": 20}})
    assert response.status_code == 400
    assert response.json() == {"errors": {"page": [MIN_ONE]}}


def test_api_run_unknown_variant_is_400(client):
    response = api_run(client, "keyset-pagination", {"variant": "nope", "params": {}})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["variant"]
    assert "nope" in errors["variant"][0]


def test_api_run_unknown_parameter_is_400(client):
    response = api_run(client, "keyset-pagination", {"variant": "keyset", "params": {"depth": 3}})
    assert response.status_code == 400
    assert response.json() == {"errors": {"params": ["unknown parameter 'depth'"]}}


@pytest.mark.parametrize(
    "body",
    ["{not json", "[1, 2]", '{"params": [1]}', '"keyset"'],
    ids=["malformed", "array", "params-not-object", "string"],
)
def test_api_run_malformed_body_is_400(client, body):
    response = api_run(client, "keyset-pagination", body, raw=True)
    assert response.status_code == 400
    assert response.json()["error"]
    assert not Sandbox.objects.exists()


def test_api_run_unknown_recipe_is_404(client):
    response = api_run(client, "nope", {"variant": "x", "params": {}})
    assert response.status_code == 404
    assert response.json() == {"error": "unknown recipe 'nope'"}


@pytest.mark.parametrize(
    ("params", "variant", "field"),
    [
        ({"index": "composite; DROP TABLE documents"}, "keyset", "index"),
        ({"index": "none' OR '1'='1"}, "keyset", "index"),
        ({"page": "1; DROP TABLE documents"}, "keyset", "page"),
        ({"size": "10 OR 1=1"}, "keyset", "size"),
        ({}, "keyset; DROP TABLE documents", "variant"),
    ],
)
def test_injection_looking_values_are_refused(client, params, variant, field):
    first = keyset(client, size=5)
    assert first.status_code == 200 and first.json()["ok"]
    role = client.session[SESSION_KEY]
    assert documents_in(role) == SMALL

    response = api_run(client, "keyset-pagination", {"variant": variant, "params": {"rows": SMALL, **params}})
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]

    again = keyset(client, page=2, size=5)
    assert again.status_code == 200
    body = again.json()
    assert body["ok"] is True and body["rows"]["total"] == 5
    assert not any("seeded" in line for line in body["setup"])
    assert documents_in(role) == SMALL


# --- running through the HTML form ----------------------------------------------------------
def test_form_run_with_htmx_returns_the_results_partial(client):
    response = form_run(
        client, "offset-pagination", {"variant": "offset", "page": 2}, **{"HX-Request": "true"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="results"' in html
    assert "<html" not in html and "<form" not in html
    assert '<span class="value" id="query-count">2</span>' in html
    assert "the query" in html
    assert 'class="plan"' in html
    assert "def offset" in _text(html)


def test_form_run_asking_for_json_returns_the_run_result(client):
    response = form_run(
        client, "offset-pagination", {"variant": "offset", "page": 2}, Accept="application/json"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= RUN_KEYS
    assert body["recipe"] == "offset-pagination"
    assert body["params"] == {"page": 2, "size": 20, "rows": SMALL, "index": "composite", "pages": 5}
    assert body["query_count"] == 2
    assert body["rows"]["total"] == 20


def test_form_run_without_htmx_returns_the_full_page(client):
    response = form_run(client, "offset-pagination", {"variant": "offset-unordered", "page": 2, "size": 5})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and "<form" in html
    assert 'id="results"' in html
    assert '<span class="value" id="query-count">1</span>' in html
    assert 'value="offset-unordered" checked' in html
    assert 'name="size" value="5"' in html
    assert "def offset_unordered" in _text(html)


def test_form_run_without_csrf_is_403(client):
    response = client.post("/recipes/offset-pagination/run", data={"variant": "offset"})
    assert response.status_code == 403
    assert not Sandbox.objects.exists()


def test_form_run_invalid_with_htmx_is_a_400_partial(client):
    response = form_run(
        client, "offset-pagination", {"variant": "offset", "page": 0}, **{"HX-Request": "true"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="results"' in html and "<html" not in html
    assert MIN_ONE in html
    assert "Nothing ran" in html
    assert not Sandbox.objects.exists()


def test_form_run_invalid_asking_for_json_is_400_with_field_errors(client):
    response = form_run(client, "offset-pagination", {"page": "x"}, Accept="application/json")
    assert response.status_code == 400
    assert response.json() == {"errors": {"page": ["Enter a whole number."]}}


def test_form_run_unknown_recipe_is_404(client):
    token = csrf_token(client)
    assert client.post("/recipes/nope/run", headers={"X-CSRFToken": token}).status_code == 404
    response = client.post("/recipes/nope/run", headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert response.status_code == 404
    assert response.json() == {"error": "unknown recipe 'nope'"}


# --- sessions and sandboxes -----------------------------------------------------------------
def offset_total(client: Client, rows: int) -> dict[str, Any]:
    response = api_run(
        client, "offset-pagination", {"variant": "offset", "params": {"rows": rows, "size": 5}}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"], body["error"]
    return body


def test_two_sessions_get_two_isolated_sandboxes():
    a, b = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)

    first_a = offset_total(a, SMALL)
    role_a = a.session[SESSION_KEY]
    first_b = offset_total(b, SMALL + 500)
    role_b = b.session[SESSION_KEY]

    assert role_a != role_b
    assert set(Sandbox.objects.values_list("role", flat=True)) == {role_a, role_b}
    assert any("seeded documents" in line for line in first_a["setup"])
    assert any("seeded documents" in line for line in first_b["setup"])
    assert first_a["metrics"]["total_rows"] == SMALL
    assert first_b["metrics"]["total_rows"] == SMALL + 500

    # A's second run uses A's sandbox again: its table, untouched by B's bigger one.
    second_a = offset_total(a, SMALL)
    assert a.session[SESSION_KEY] == role_a
    assert Sandbox.objects.count() == 2
    assert second_a["metrics"]["total_rows"] == SMALL
    assert not any("seeded" in line for line in second_a["setup"])
    assert documents_in(role_a) == SMALL
    assert documents_in(role_b) == SMALL + 500

    assert Run.objects.filter(sandbox__role=role_a).count() == 2
    assert Run.objects.filter(sandbox__role=role_b).count() == 1


def test_reset_empties_the_sandbox_and_the_next_run_reseeds(client):
    token = csrf_token(client)
    nothing = client.post("/sandbox/reset", headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert nothing.status_code == 200
    assert nothing.json()["reset"] is False

    assert keyset(client, size=5).status_code == 200
    role = client.session[SESSION_KEY]
    warm = keyset(client, size=5).json()
    assert not any("seeded" in line for line in warm["setup"])

    response = client.post(
        "/sandbox/reset", data={"next": "/recipes/keyset-pagination/"}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 302
    assert response["Location"] == "/recipes/keyset-pagination/"
    assert client.session[SESSION_KEY] == role
    with pytest.raises(Exception, match="documents"):
        documents_in(role)

    after = keyset(client, size=5).json()
    assert after["ok"] is True
    assert any("seeded documents" in line for line in after["setup"])
    assert client.session[SESSION_KEY] == role
    assert documents_in(role) == SMALL


def test_reset_without_csrf_is_403(client):
    assert client.post("/sandbox/reset").status_code == 403


def test_reset_with_htmx_returns_the_flash_partial(client):
    token = csrf_token(client)
    response = client.post("/sandbox/reset", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="flash"' in html and "<html" not in html


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_api_clients_get_json_for_the_errors_django_answers_itself(client, settings, debug):
    settings.DEBUG = debug  # with DEBUG on, an unmatched URL gets Django's technical 404 page
    missing = client.get("/api/no-such-thing")
    assert missing.status_code == 404 and missing.json() == {"error": "no such page: /api/no-such-thing"}
    wrong_method = client.get("/api/recipes/keyset-pagination/run")
    assert wrong_method.status_code == 405 and wrong_method["Allow"] == "POST"
    assert wrong_method.json() == {"error": "method not allowed"}
    asked = client.get("/no-such-page/", HTTP_ACCEPT="application/json")
    assert asked.status_code == 404 and "error" in asked.json()
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and "text/html" in page["Content-Type"]
