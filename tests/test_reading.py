"""The Reading shelf beyond pagination: eager loading and exists/count, measured on real Postgres."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from django.test import Client
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import Sandbox

EAGER = ("selectinload", "joinedload", "subqueryload")


def query_count(result) -> int:
    return sum(1 for s in result.statements if s.kind == "query")


@pytest.mark.parametrize("direction", ["authors-books", "books-author"])
def test_lazy_grows_with_parents_and_eager_strategies_do_not(engine, run_recipe, direction):
    counts = {
        (variant, n): run_recipe(engine, "eager-loading", variant, authors=n, direction=direction).query_count
        for variant in ("lazy", *EAGER)
        for n in (5, 40)
    }
    assert counts[("lazy", 40)] - counts[("lazy", 5)] == 35  # one more query per extra author
    for variant in EAGER:
        assert counts[(variant, 5)] == counts[(variant, 40)], variant
        assert counts[(variant, 40)] < counts[("lazy", 40)], variant


def test_lazy_collection_is_one_plus_n_statements_of_one_shape(engine, run_recipe):
    result = run_recipe(engine, "eager-loading", "lazy", authors=12, books_per_author=3)
    shapes = Counter(s.sql for s in result.statements if s.kind == "query")
    assert sorted(shapes.values()) == [1, 12]
    assert result.query_count == query_count(result)
    assert any("N+1" in note for note in result.notes)


def test_lazy_many_to_one_queries_only_distinct_parents(engine, run_recipe):
    result = run_recipe(
        engine, "eager-loading", "lazy", authors=7, books_per_author=4, direction="books-author"
    )
    assert result.metrics["parents_loaded"] == 28  # books
    assert result.query_count == 1 + 7  # the books, then one query per distinct author


def test_selectinload_splits_a_long_in_list_into_chunks(engine, run_recipe):
    small = run_recipe(engine, "eager-loading", "selectinload", authors=50, books_per_author=1)
    large = run_recipe(engine, "eager-loading", "selectinload", authors=1200, books_per_author=1)
    assert small.query_count == 2
    assert large.query_count > 2
    in_queries = [s for s in large.statements if s.kind == "query"][1:]
    assert len({s.sql for s in in_queries}) > 1  # the last chunk holds fewer keys
    assert len({s.shape for s in in_queries}) == 1  # same shape, other keys: the chunks
    loaded = sum(s.rowcount for s in in_queries)
    assert loaded == 1200
    assert any("split" in note for note in large.notes)


def test_joinedload_repeats_parent_columns_in_rows(engine, run_recipe):
    result = run_recipe(engine, "eager-loading", "joinedload", authors=10, books_per_author=4)
    (stmt,) = [s for s in result.statements if s.kind == "query"]
    assert stmt.rowcount == 40  # one row per book, each carrying its author
    assert result.metrics["parents_loaded"] == 10
    assert result.metrics["objects_built"] == 50


def test_joinedload_with_limit_limits_parents_not_rows(engine, run_recipe):
    result = run_recipe(engine, "eager-loading", "joinedload", authors=20, books_per_author=3, limit=4)
    (stmt,) = [s for s in result.statements if s.kind == "query"]
    assert result.metrics["parents_loaded"] == 4
    assert stmt.rowcount == 12
    assert all(row[1] == 3 for row in result.rows.data)  # every author came with all its books


def test_nested_reviews_need_a_chained_option(engine, run_recipe):
    flat = run_recipe(engine, "eager-loading", "selectinload", authors=6, nested=False)
    nested = run_recipe(engine, "eager-loading", "selectinload", authors=6, nested=True)
    assert nested.query_count == flat.query_count + 1
    reviews = [row[2] for row in nested.rows.data]
    with engine.connect() as conn:
        per_author = conn.execute(
            text(
                "SELECT count(r.id) FROM authors a JOIN books b ON b.author_id = a.id "
                "JOIN reviews r ON r.book_id = b.id GROUP BY a.id ORDER BY a.id"
            )
        ).scalars()
        assert reviews == list(per_author)


def test_raiseload_reports_the_error_as_a_message(engine, run_recipe):
    result = run_recipe(engine, "eager-loading", "raiseload", authors=3)
    assert not result.ok
    assert "lazy='raise'" in result.error
    assert "Traceback" not in result.error


@pytest.mark.parametrize("match", [0, 25])
def test_exists_count_and_len_all_agree_with_sql(engine, run_recipe, match):
    len_all = run_recipe(engine, "exists-count", "len-all", rows=3000, match=match)
    count = run_recipe(engine, "exists-count", "count", rows=3000, match=match)
    exists = run_recipe(engine, "exists-count", "exists", rows=3000, match=match)
    with engine.connect() as conn:
        expected = conn.execute(text("SELECT count(*) FROM users WHERE role = 'admin'")).scalar()
    assert count.rows.data == [[expected]]
    assert isinstance(count.rows.data[0][0], int)
    assert exists.rows.data == [[expected > 0]]
    assert isinstance(exists.rows.data[0][0], bool)
    assert len_all.rows.data == [[expected]]
    (loaded,) = [s for s in len_all.statements if s.kind == "query"]
    assert loaded.rowcount == expected  # every matching row crossed the wire
    assert len_all.metrics["python_peak_kb"] > 0


def test_len_all_allocates_more_python_memory_than_count(engine, run_recipe):
    len_all = run_recipe(engine, "exists-count", "len-all", rows=20000, match=50)
    count = run_recipe(engine, "exists-count", "count", rows=20000, match=50)
    assert len_all.metrics["python_peak_kb"] > 10 * count.metrics["python_peak_kb"]


@pytest.mark.django_db(transaction=True)
def test_out_of_range_and_unknown_strategy_are_refused():
    client = Client()
    for params, field in (
        ({"authors": 0}, "authors"),
        ({"authors": 2001}, "authors"),
        ({"books_per_author": 51}, "books_per_author"),
        ({"direction": "sideways"}, "direction"),
    ):
        response = client.post(
            "/api/recipes/eager-loading/run",
            data=json.dumps({"variant": "lazy", "params": params}),
            content_type="application/json",
        )
        assert response.status_code == 400
        assert field in response.json()["errors"]
    response = client.post(
        "/api/recipes/exists-count/run",
        data=json.dumps({"variant": "count", "params": {"match": 101}}),
        content_type="application/json",
    )
    assert response.json()["errors"]["match"] == ["Ensure this value is less than or equal to 100."]
    response = client.post(
        "/api/recipes/eager-loading/run",
        data=json.dumps({"params": {"strategy": "eagerest"}}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert Sandbox.objects.count() == 0  # nothing was provisioned for bad input


@pytest.mark.django_db(transaction=True)
def test_runs_too_costly_for_a_shared_instance_are_refused_with_a_message():
    client = Client()
    response = client.post(
        "/api/recipes/exists-count/run",
        data=json.dumps({"variant": "len-all", "params": {"rows": 1_000_000, "match": 100}}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "ORM objects" in response.json()["errors"]["match"][0]
    response = client.post(
        "/api/recipes/eager-loading/run",
        data=json.dumps(
            {"variant": "lazy", "params": {"authors": 2000, "books_per_author": 50, "nested": True}}
        ),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "queries" in response.json()["errors"]["authors"][0]
    assert Sandbox.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_strategy_alias_and_compare_through_http():
    client = Client()
    try:
        response = client.post(
            "/api/recipes/eager-loading/run",
            data=json.dumps({"params": {"strategy": "selectinload", "authors": 8}}),
            content_type="application/json",
        )
        assert response.status_code == 200
        assert response.json()["variant"] == "selectinload"

        response = client.post(
            "/recipes/exists-count/compare", {"rows": 1000, "match": 10}, HTTP_ACCEPT="application/json"
        )
        runs = response.json()["runs"]
        assert [r["variant"] for r in runs] == ["len-all", "count", "exists"]
        assert len({r["params"]["rows"] for r in runs}) == 1

        page = client.post("/recipes/eager-loading/compare", {"authors": 10}, HTTP_HX_REQUEST="true")
        html = page.content.decode()
        assert page.status_code == 200
        assert 'id="comparison"' in html and "<html" not in html
        for variant in ("lazy", "selectinload", "joinedload", "subqueryload", "immediateload", "raiseload"):
            assert variant in html
    finally:
        for box in Sandbox.objects.all():
            sandboxes.drop(box)
