"""Input a person or a script can send: what a recipe accepts, and hostile bodies the API must refuse.

The first half checks `Recipe.validate` and the sweep's own checks without Django or a database; the
second half sends malformed requests through the test client: each one must get a 4xx in the
client's own shape (JSON for API clients), never a 500 or Django's HTML error page.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

import recipes
from playground import sandbox as sandboxes
from playground.models import Sandbox
from recipes.base import Param, Recipe
from recipes.validation import InvalidParams, Validated

# --- a recipe declaring one parameter of each kind -------------------------------------------
toy = Recipe(
    slug="toy",
    title="Toy",
    section="Reading",
    summary="A recipe for checking input.",
    variant_alias="way",
    params=(
        Param("page", "int", 1, label="Page depth", min=1, max=500),
        Param("ratio", "float", 0.5, label="Ratio", min=0.1, max=10),
        Param("deep", "bool", False, label="Go deep"),
        Param("order", "choice", "asc", label="Order", choices=("asc", "desc")),
        Param("word", "str", "hello", label="Search words", max_length=8),
    ),
)


@toy.variant
def slow(run, p):
    """Slow."""


@toy.variant
def fast(run, p):
    """Fast."""


@toy.guard
def _too_deep(variant, p):
    return {"page": f"{variant} may not go past page 100."} if variant == "slow" and p.page > 100 else {}


def errors_of(data: dict[str, Any], *, form: bool = False) -> dict[str, list[str]]:
    with pytest.raises(InvalidParams) as raised:
        toy.validate(data, form=form)
    return raised.value.errors


def test_absent_keys_take_the_defaults():
    chosen = toy.validate({})
    assert isinstance(chosen, Validated)
    assert chosen.variant == "slow"
    assert dict(chosen.params) == {"page": 1, "ratio": 0.5, "deep": False, "order": "asc", "word": "hello"}
    assert chosen.params.page == 1


def test_json_values_are_converted_and_kept():
    chosen = toy.validate(
        {"variant": "fast", "page": 7, "ratio": 2, "deep": True, "order": "desc", "word": "héllo ✓"}
    )
    assert chosen.variant == "fast"
    assert dict(chosen.params) == {"page": 7, "ratio": 2.0, "deep": True, "order": "desc", "word": "héllo ✓"}
    assert toy.validate({"page": 3.0}).params.page == 3  # an integral float is a whole number
    assert toy.validate({"page": "12"}).params.page == 12  # as scripts have always sent it


@pytest.mark.parametrize(
    "value", [True, False, 2.5, "2.5", "1_000", "١٢", "1e3", [1], {"x": 1}, float("nan")]
)
def test_an_int_refuses_bools_fractions_and_odd_spellings(value):
    assert errors_of({"page": value}) == {"page": ["Enter a whole number."]}


@pytest.mark.parametrize("value", [1, 0, "true", "yes", "on", {"x": 1}, [True]])
def test_a_json_bool_is_only_true_or_false(value):
    assert errors_of({"deep": value}) == {"deep": ["Enter true or false."]}


@pytest.mark.parametrize("value", [float("inf"), float("nan"), "nan", "inf", True, [0.5]])
def test_a_float_refuses_non_finite_values_and_bools(value):
    assert errors_of({"ratio": value}) == {"ratio": ["Enter a number."]}


@pytest.mark.parametrize("value", [["a"], {"a": 1}, 42, 4.2, True])
def test_a_text_parameter_refuses_anything_but_a_string(value):
    assert errors_of({"word": value}) == {"word": ["Enter text (a string)."]}


@pytest.mark.parametrize("value", ["\ud800", "ab\udfffcd"])
def test_a_lone_surrogate_is_refused(value):
    [message] = errors_of({"word": value})["word"]
    assert "not valid Unicode" in message


def test_a_nul_character_is_refused():
    [message] = errors_of({"word": "a\x00b"})["word"]
    assert "NUL" in message


def test_bounds_choices_and_length_keep_the_documented_messages():
    assert errors_of({"page": 0}) == {"page": ["Ensure this value is greater than or equal to 1."]}
    assert errors_of({"page": 501}) == {"page": ["Ensure this value is less than or equal to 500."]}
    assert errors_of({"ratio": 0.05}) == {"ratio": ["Ensure this value is greater than or equal to 0.1."]}
    assert errors_of({"order": "sideways"}) == {
        "order": ["Select a valid choice. sideways is not one of the available choices."]
    }
    assert errors_of({"word": "x" * 9}) == {
        "word": ["Ensure this value has at most 8 characters (it has 9)."]
    }


def test_null_is_refused_with_the_way_to_get_the_default():
    errors = errors_of({"page": None, "variant": None})
    assert errors["page"] == ["null is not a value: leave the key out for the default (1)."]
    assert errors["variant"] == ["null is not a value: leave the key out for the default (slow)."]


def test_every_problem_is_reported_at_once_and_unknown_names_under_params():
    errors = errors_of({"variant": "nope", "page": "x", "ratio": "y", "depth": 3, "colour": "red"})
    assert errors == {
        "variant": ["Select a valid choice. nope is not one of the available choices."],
        "page": ["Enter a whole number."],
        "ratio": ["Enter a number."],
        "params": ["unknown parameter 'colour'", "unknown parameter 'depth'"],
    }


def test_a_variant_that_is_not_a_string_is_refused_without_a_crash():
    assert list(errors_of({"variant": ["slow"]})) == ["variant"]
    assert list(errors_of({"variant": {"a": 1}})) == ["variant"]


def test_the_alias_selects_the_variant_and_must_agree_with_it():
    assert toy.validate({"way": "fast"}).variant == "fast"
    assert toy.validate({"way": "fast", "variant": "fast"}).variant == "fast"
    assert list(errors_of({"way": "fast", "variant": "slow"})) == ["way"]
    assert list(errors_of({"way": "warp"})) == ["way"]


def test_the_guard_runs_last_on_valid_input_only():
    assert errors_of({"page": 200}) == {"page": ["slow may not go past page 100."]}
    assert toy.validate({"page": 200, "variant": "fast"}).params.page == 200
    # An invalid value elsewhere: the guard is not asked (it may rely on every value being valid).
    assert errors_of({"page": 200, "ratio": "x"}) == {"ratio": ["Enter a number."]}


def test_form_values_are_strings_and_an_unticked_checkbox_is_false():
    chosen = toy.validate({"page": "7", "ratio": "1.5", "order": "desc", "word": "abc"}, form=True)
    assert dict(chosen.params) == {"page": 7, "ratio": 1.5, "deep": False, "order": "desc", "word": "abc"}
    assert toy.validate({"deep": "on"}, form=True).params.deep is True
    assert toy.validate({"deep": "False"}, form=True).params.deep is False  # as a shared link spells it
    assert errors_of({"deep": "maybe"}, form=True) == {"deep": ["Enter true or false."]}


def test_form_ignores_other_fields_but_refuses_an_emptied_one():
    assert toy.validate({"csrfmiddlewaretoken": "x", "sweep_points": "3"}, form=True).params.page == 1
    errors = errors_of({"page": "", "word": ""}, form=True)
    assert errors == {
        "page": ["This field is empty: enter a value (the default is 1)."],
        "word": ["This field is empty: enter a value (the default is hello)."],
    }


def test_invalid_input_keeps_what_was_read_for_redisplay():
    with pytest.raises(InvalidParams) as raised:
        toy.validate({"page": "abc", "deep": "on", "variant": "fast"}, form=True)
    assert raised.value.values == {
        "variant": "fast",
        "page": "abc",
        "ratio": 0.5,
        "deep": True,
        "order": "asc",
        "word": "hello",
    }


# --- sweeps ------------------------------------------------------------------------------------
def test_sweep_settings_are_checked_without_django():
    import recipes
    from playground.running import sweeps

    keyset = recipes.get("keyset-pagination")
    spec = sweeps.validate_sweep(
        keyset, {"sweep_param": "page", "sweep_from": "1", "sweep_to": "91", "sweep_points": "3"}
    )
    assert (spec.param, spec.values, spec.y, spec.companions) == ("page", [1, 46, 91], "rows_read", False)
    with pytest.raises(InvalidParams) as raised:
        sweeps.validate_sweep(keyset, {"sweep_param": "page", "sweep_from": "50", "sweep_to": "x"})
    assert raised.value.errors == {"sweep_to": ["Enter a whole number."]}
    with pytest.raises(InvalidParams) as raised:
        sweeps.validate_sweep(keyset, {"sweep_param": "page", "sweep_from": "0", "sweep_to": "10"})
    assert raised.value.errors["sweep_from"][0].startswith("Page depth must stay between 1 and ")


# --- hostile requests ------------------------------------------------------------------------
@pytest.fixture
def client(transactional_db) -> Iterator[Client]:
    client = Client(enforce_csrf_checks=True)
    assert client.get("/api/recipes").status_code == 200
    yield client
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


def token(client: Client) -> str:
    return client.cookies["csrftoken"].value


def api_post(client: Client, slug: str, body: str | bytes, content_type: str = "application/json"):
    return client.post(
        f"/api/recipes/{slug}/run",
        data=body,
        content_type=content_type,
        headers={"X-CSRFToken": token(client)},
    )


def assert_json_error(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def test_json_nested_five_thousand_deep_is_a_400(client):
    body = '{"params": {"page": ' + "[" * 5000 + "]" * 5000 + "}}"
    assert assert_json_error(api_post(client, "keyset-pagination", body), 400)["error"]
    assert not Sandbox.objects.exists()


def test_a_multipart_body_to_the_api_is_refused_as_json(client):
    response = client.post(
        "/api/recipes/keyset-pagination/run",
        data={"variant": "keyset", "page": "2"},  # the test client sends multipart/form-data
        headers={"X-CSRFToken": token(client)},
    )
    assert "application/json" in assert_json_error(response, 415)["error"]


def test_json_sent_as_text_plain_is_a_415(client):
    body = json.dumps({"variant": "keyset", "params": {"page": 2}})
    assert (
        "application/json"
        in assert_json_error(api_post(client, "keyset-pagination", body, "text/plain"), 415)["error"]
    )
    assert not Sandbox.objects.exists()


def test_a_lone_surrogate_in_json_is_a_400_not_a_500(client):
    body = '{"variant": "email", "params": {"query": "email-lower", "email": "\\ud800"}}'
    errors = assert_json_error(api_post(client, "indexes", body), 400)["errors"]
    assert list(errors) == ["email"] and "not valid Unicode" in errors["email"][0]
    assert not Sandbox.objects.exists()


@pytest.mark.parametrize("value", [1, {"x": 1}, "yes", None])
def test_a_json_bool_parameter_takes_only_true_or_false(client, value):
    body = json.dumps({"variant": "lazy", "params": {"nested": value}})
    errors = assert_json_error(api_post(client, "eager-loading", body), 400)["errors"]
    assert list(errors) == ["nested"]


@pytest.mark.parametrize("value", [["a"], {"a": "b"}, 42, None])
def test_a_json_text_parameter_takes_only_a_string(client, value):
    body = json.dumps({"params": {"email": value}})
    errors = assert_json_error(api_post(client, "indexes", body), 400)["errors"]
    assert list(errors) == ["email"]


def test_json_null_says_to_leave_the_key_out(client):
    body = json.dumps({"variant": "keyset", "params": {"page": None}})
    [message] = assert_json_error(api_post(client, "keyset-pagination", body), 400)["errors"]["page"]
    assert "leave the key out" in message


def test_an_emptied_form_field_is_refused_not_defaulted(client):
    response = client.post(
        "/recipes/keyset-pagination/run",
        data={"variant": "keyset", "rows": "1000", "page": ""},
        headers={"X-CSRFToken": token(client), "HX-Request": "true"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing ran" in html
    # named by its label, which links to the field
    assert '<a href="#id_page">Page depth</a>: This field is empty: enter a value (the default is 1).' in html
    assert not Sandbox.objects.exists()


def test_a_non_numeric_sweep_step_is_a_400(client):
    form = {
        "variant": "keyset",
        "rows": "1000",
        "sweep_param": "page",
        "sweep_from": "1",
        "sweep_to": "11",
        "sweep_points": "2",
        "sweep_y": "db_ms",
        "step": "abc",
    }
    headers = {"X-CSRFToken": token(client), "HX-Request": "true"}
    response = client.post("/recipes/keyset-pagination/sweep", form, headers=headers)
    assert response.status_code == 400
    assert 'id="results"' in response.content.decode()
    assert not Sandbox.objects.exists()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/nope", {}),
        ("/runs/999999/", {"Accept": "application/json"}),
        ("/nowhere", {"Accept": "application/json"}),
    ],
)
def test_api_clients_get_json_404s(client, path, headers):
    assert assert_json_error(client.get(path, headers=headers), 404)["error"]


def test_an_unknown_recipe_is_a_json_404(client):
    assert assert_json_error(api_post(client, "nope", "{}"), 404) == {"error": "unknown recipe 'nope'"}


def test_a_browser_still_gets_an_html_404(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_a_too_large_body_is_a_413_in_json_for_api_clients(client):
    padding = "x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    as_json = api_post(client, "keyset-pagination", json.dumps({"params": {}, "padding": padding}))
    assert "too large" in assert_json_error(as_json, 413)["error"]
    as_form = client.post(
        "/recipes/keyset-pagination/run",
        data={"rows": "1000", "padding": padding},
        content_type="application/x-www-form-urlencoded",
        headers={"X-CSRFToken": token(client), "Accept": "application/json"},
    )
    assert "too large" in assert_json_error(as_form, 413)["error"]
    assert not Sandbox.objects.exists()


def test_429_and_503_carry_retry_after(client, settings):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "RUN_BURST": 1, "RUNS_PER_MINUTE": 1}
    body = json.dumps({"variant": "offset", "params": {"rows": 1000}})
    assert api_post(client, "offset-pagination", body).status_code == 200
    limited = api_post(client, "offset-pagination", body)
    assert assert_json_error(limited, 429)["error"].startswith("Too many runs")
    assert 1 <= int(limited["Retry-After"]) <= 60

    settings.PLAYGROUND = {
        **settings.PLAYGROUND,
        "RUN_BURST": 100,
        "SANDBOX_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere",
    }
    fresh = Client(enforce_csrf_checks=True)
    assert fresh.get("/api/recipes").status_code == 200
    down = api_post(fresh, "offset-pagination", body)
    assert assert_json_error(down, 503)["error"].startswith("The database is not answering")
    assert int(down["Retry-After"]) > 0


def test_compare_checks_the_guard_of_every_variant_it_runs(client):
    # selectinload alone would pass the guard; compare also runs lazy, which sends a query per author.
    response = client.post(
        "/recipes/eager-loading/compare",
        {"variant": "selectinload", "authors": "2000", "books_per_author": "2", "nested": "on"},
        headers={"X-CSRFToken": token(client), "Accept": "application/json"},
    )
    errors = assert_json_error(response, 400)["errors"]
    assert "queries" in errors["authors"][0]
    assert not Sandbox.objects.exists()


def test_a_link_leaving_out_a_checkbox_keeps_its_default(client):
    recipe = recipes.get("full-text-search")
    ticked = next(p for p in recipe.params if p.kind == "bool" and p.default is True)
    html = client.get(f"/recipes/{recipe.slug}/?rows={recipe.param('rows').min}").content.decode()
    assert re.search(rf'<input type="checkbox" name="{ticked.name}"[^>]* checked>', html)
    html = client.get(f"/recipes/{recipe.slug}/?{ticked.name}=False").content.decode()
    assert not re.search(rf'<input type="checkbox" name="{ticked.name}"[^>]* checked>', html)


# --- layers ------------------------------------------------------------------------------------
def imported_modules(folder: Path) -> set[str]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
    return found


def test_running_imports_nothing_from_the_web_layer_and_recipes_nothing_from_django():
    root = Path(__file__).resolve().parent.parent
    assert not {
        m for m in imported_modules(root / "playground" / "running") if m.startswith("playground.web")
    }
    assert not {m for m in imported_modules(root / "recipes") if m.split(".")[0] in ("django", "playground")}
