"""Generated input thrown at every JSON endpoint: never a 5xx, always JSON, and a 400 says why.

Hypothesis builds the bodies: JSON values of every type (nested, huge, odd numbers and text) where
a recipe expects its parameters, mixed with values each parameter accepts, so that a fair share
of the requests really run in the sandbox and the answers of a run are checked too. One session
serves each test (one sandbox, its tables seeded once); its run allowance is raised so that
generated runs are not all refused with a 429.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import recipes
from playground import sandbox as sandboxes
from playground.models import Run, Sandbox
from playground.running import sweeps
from recipes.base import Param, Recipe

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SLUGS = sorted(recipes.REGISTRY)
SWEEPABLE = [slug for slug in SLUGS if any(p.sweepable for p in recipes.get(slug).params)]
RUN_KEYS = {"recipe", "variant", "params", "ok", "error", "rows", "statements", "query_count", "plan"}
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    # The client and the settings are made once per test and serve every example on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- what is sent ------------------------------------------------------------------------------
ODD_TEXT = st.sampled_from(
    ["", " ", "0", "1e309", "-0", "NaN", "Infinity", "0x10", "1_000", "١٢", "\x00", "\ud800", "☃" * 50]
)
FORM_TEXT = ODD_TEXT.filter(lambda t: t != "\ud800")
"""Odd text a form can carry: a browser cannot send a lone surrogate (the test client cannot either)."""
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=10**18, max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 1e-320, 0.5]),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=30), ODD_TEXT)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
HUGE = st.sampled_from([10**4000, "x" * 70_000, [[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]], list(range(3000))])


def accepted(param: Param) -> st.SearchStrategy[Any]:
    """A value `param` accepts and that runs fast: the smallest table, few workers, short holds."""
    match param.kind:
        case "int" | "float":
            low = param.min if param.min is not None else param.default
            if param.name == "rows" or param.max is None:
                return st.just(low)
            small = param.default if param.default < 50 else low
            return st.sampled_from([low, min(low + 1, param.max), small])
        case "bool":
            return st.booleans()
        case "choice":
            return st.sampled_from(param.choices)
        case _:
            return st.one_of(st.just(param.default), st.text(max_size=20))


def param_value(param: Param, *, clean: bool) -> st.SearchStrategy[Any]:
    """What the parameter accepts when `clean`, else that or anything JSON can hold."""
    return accepted(param) if clean else st.one_of(accepted(param), JSON_VALUES, HUGE)


@st.composite
def run_body(draw: st.DrawFn, recipe: Recipe) -> Any:
    """A body for POST /api/recipes/<slug>/run: mostly the documented shape, sometimes not."""
    shape = draw(st.sampled_from(["documented"] * 6 + ["any value", "odd params", "raw"]))
    if shape == "any value":
        return draw(st.one_of(JSON_VALUES, HUGE))
    if shape == "raw":
        return draw(st.binary(max_size=40)).decode("latin-1")  # sent as it is: maybe not JSON
    clean = draw(st.booleans())  # half of the documented bodies hold only accepted values
    params = {p.name: draw(param_value(p, clean=clean)) for p in recipe.params if draw(st.booleans())}
    if shape == "odd params":
        params = draw(st.one_of(JSON_VALUES, st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3)))
    body: dict[str, Any] = {"params": params}
    variants = st.sampled_from(list(recipe.variants))
    if draw(st.integers(0, 4)):
        body["variant"] = draw(variants if clean else st.one_of(variants, JSON_VALUES))
    if not clean and not draw(st.integers(0, 4)):
        body[draw(st.text(max_size=8))] = draw(JSON_VALUES)
    return body


def as_form(value: Any) -> str:
    """How a form would send a JSON value: everything is text."""
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def run_form(draw: st.DrawFn, recipe: Recipe, *, clean: bool | None = None) -> dict[str, str]:
    """What the recipe page's form could post: accepted values only (half the time), or odd text
    in some fields."""
    clean = draw(st.booleans()) if clean is None else clean
    form = {}
    for p in recipe.params:
        if draw(st.integers(0, 5)):
            fine = accepted(p).map(str)
            form[p.name] = draw(fine if clean else st.one_of(fine, FORM_TEXT, st.text()))
    variants = st.sampled_from(list(recipe.variants))
    if draw(st.integers(0, 5)):
        form["variant"] = draw(variants if clean else st.one_of(variants, FORM_TEXT))
    return form


@st.composite
def sweep_form(draw: st.DrawFn, recipe: Recipe) -> dict[str, str]:
    """A sweep of two points over a short range, or settings that do not hold together."""
    clean = draw(st.booleans())
    form = draw(run_form(recipe, clean=clean))
    param = draw(st.sampled_from([p for p in recipe.params if p.sweepable]))
    low = int(param.min)
    top = str(min(low + 3, int(param.max)))
    open_end = [""] if param.name in recipe.sweep_defaults.ends else []  # to the table's end: small
    settings = {
        "sweep_param": st.just(param.name),
        "sweep_from": st.just(str(low)),
        "sweep_to": st.sampled_from([top, *open_end]),
        "sweep_points": st.just("2"),
        "sweep_y": st.sampled_from(list(sweeps.Y_AXES)),
    }
    odd = st.one_of(FORM_TEXT, st.integers(-5, 20).map(str), st.text(max_size=10))
    for name, fine in settings.items():
        form[name] = draw(fine if clean else st.one_of(fine, odd))
    return form


# --- what comes back ---------------------------------------------------------------------------
def answer(response) -> Any:
    """The JSON of a response that must never be a 5xx and must always be JSON.

    Each status is counted (pytest --hypothesis-show-statistics), to see how many runs really ran.
    """
    if currently_in_test_context():
        event(f"HTTP {response.status_code}")
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    return json.loads(response.content)


def assert_refusal(data: Any, *, per_field: bool) -> None:
    """DESIGN.md's 400: `{"errors": {field: [message, ...]}}`, or `{"error": "..."}`."""
    if per_field:
        assert set(data) == {"errors"}, data
        assert data["errors"] and all(
            isinstance(field, str) and messages and all(isinstance(m, str) and m for m in messages)
            for field, messages in data["errors"].items()
        ), data
    else:
        assert set(data) in ({"errors"}, {"error"}), data
        assert data.get("error") or data.get("errors")


def documented(body: Any) -> bool:
    """A JSON object whose parameters, if sent, are an object: its problems are told per field."""
    return isinstance(body, dict) and isinstance(body.get("params", {}), dict)


@pytest.fixture
def client(settings) -> Iterator[Client]:
    settings.PLAYGROUND = {**settings.PLAYGROUND, "RUN_BURST": 100_000, "RUNS_PER_MINUTE": 100_000}
    yield Client()
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


# --- the tests ---------------------------------------------------------------------------------
@EXAMPLES
@given(data=st.data())
def test_api_run_never_fails_and_refuses_per_field(client, data):
    slug = data.draw(st.sampled_from([*SLUGS, "no-such-recipe"]), label="slug")
    recipe = recipes.get(slug) or recipes.get(SLUGS[0])
    body = data.draw(run_body(recipe), label="body")
    raw = body if isinstance(body, str) and not documented(body) else json.dumps(body)
    response = client.post(f"/api/recipes/{slug}/run", raw, content_type="application/json")
    result = answer(response)
    if slug == "no-such-recipe":
        assert response.status_code == 404 and result == {"error": "unknown recipe 'no-such-recipe'"}
    elif response.status_code == 200:
        assert set(result) >= RUN_KEYS and result["recipe"] == slug
        assert set(result["params"]) == {p.name for p in recipe.params}
    elif response.status_code == 400:
        assert_refusal(result, per_field=documented(body) and not isinstance(body, str))
    else:
        assert response.status_code == 413 and result["error"], response.status_code


def test_every_recipe_runs_through_the_api_with_what_its_parameters_accept(client):
    """The generated runs above draw their slugs by chance: here every one runs at least once."""
    for slug in SLUGS:
        recipe = recipes.get(slug)
        params = {p.name: p.min for p in recipe.params if p.kind == "int" and p.min is not None}
        body = {"params": params}
        response = client.post(f"/api/recipes/{slug}/run", body, content_type="application/json")
        result = answer(response)
        assert response.status_code in (200, 400), (slug, result)
        if response.status_code == 400:
            assert_refusal(result, per_field=True)


@EXAMPLES
@given(data=st.data())
def test_api_recipes_ignores_any_query_string(client, data):
    query = data.draw(st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3))
    result = answer(client.get("/api/recipes", query))
    assert [r["slug"] for r in result["recipes"]] == list(recipes.REGISTRY)


@settings(EXAMPLES, max_examples=40)
@given(data=st.data())
def test_the_json_of_a_run_and_a_compare_from_a_form(client, data):
    slug = data.draw(st.sampled_from(SLUGS), label="slug")
    action = data.draw(st.sampled_from(["run", "run", "compare"]), label="action")
    form = data.draw(run_form(recipes.get(slug)), label="form")
    response = client.post(f"/recipes/{slug}/{action}", form, HTTP_ACCEPT="application/json")
    result = answer(response)
    if response.status_code == 400:
        assert_refusal(result, per_field=True)
    else:
        assert response.status_code == 200
        assert set(result) >= (RUN_KEYS if action == "run" else {"recipe", "runs"})


@settings(EXAMPLES, max_examples=30)
@given(data=st.data())
def test_the_json_of_a_sweep(client, data):
    slug = data.draw(st.sampled_from(SWEEPABLE), label="slug")
    form = data.draw(sweep_form(recipes.get(slug)), label="form")
    response = client.post(f"/recipes/{slug}/sweep", form, HTTP_ACCEPT="application/json")
    result = answer(response)
    if response.status_code == 400:
        assert_refusal(result, per_field=True)
    else:
        assert response.status_code == 200, result
        assert len(result["values"]) == result["total"] and result["done"] <= result["total"]
        assert all(len(s["points"]) <= result["done"] for s in result["series"])
        if result["ok"]:  # else a point failed (a timeout, say): it says so, the points drawn kept
            assert result["error"] is None and result["done"] == result["total"]
        else:
            assert result["error"].startswith(f"Point {result['done'] + 1} of {result['total']} did not run")


@EXAMPLES
@given(data=st.data())
def test_the_json_of_history_a_stored_run_and_a_diff(client, data):
    if not Run.objects.exists():  # a session with two runs to find
        for page in (1, 2):
            form = {"variant": "keyset", "rows": "1000", "page": str(page)}
            assert client.post("/recipes/keyset-pagination/run", form).status_code == 200
    ids = list(Run.objects.values_list("pk", flat=True))
    run_id = st.one_of(st.sampled_from(ids), st.integers(min_value=0))
    query_value = st.one_of(run_id.map(str), FORM_TEXT, st.text(max_size=12))
    which = data.draw(st.sampled_from(["history", "run", "diff"]), label="which")
    if which == "history":
        query = data.draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5)), label="query")
        response = client.get("/history", query, HTTP_ACCEPT="application/json")
    elif which == "run":
        response = client.get(f"/runs/{data.draw(run_id, label='id')}/", HTTP_ACCEPT="application/json")
    else:
        query = {k: data.draw(query_value, label=k) for k in ("a", "b") if data.draw(st.integers(0, 5))}
        response = client.get("/runs/diff", query, HTTP_ACCEPT="application/json")
    result = answer(response)
    if response.status_code == 400:
        assert_refusal(result, per_field=False)
    else:
        assert response.status_code in (200, 404), response.status_code
