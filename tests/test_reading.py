"""The Reading shelf beyond pagination: eager loading and exists/count, measured on real Postgres."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter

import pytest
from django.test import Client
from sqlalchemy import literal, select, text

from playground import sandbox as sandboxes
from playground.models import Sandbox
from playground.running import runner
from recipes.base import Recipe

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


# --- exists-count: where EXISTS finds its first match, and what measuring memory costs ---------
@pytest.mark.parametrize("index", [False, True])
def test_exists_on_a_rare_value_late_in_the_table_reads_what_count_reads(engine, run_recipe, index):
    rows = 5000
    exists = run_recipe(engine, "exists-count", "exists", rows=rows, look_for="newest-user", index=index)
    count = run_recipe(engine, "exists-count", "count", rows=rows, look_for="newest-user", index=index)
    assert exists.rows.data == [[True]] and count.rows.data == [[1]]
    read = exists.plan.summary.key_scan
    if index:
        assert read.index == "ix_users_name" and read.rows_read == 1
    else:  # no index: the one match is the last row, so EXISTS reads the table, as count does
        assert read.node_type == "Seq Scan" and read.rows_read == rows
        assert count.plan.summary.key_scan.rows_read == rows
    note = next(n for n in exists.notes if n.startswith("EXISTS stopped at its first match"))
    assert f"after reading {read.rows_read:,} of the {rows:,} rows ({read.label}" in note


def test_exists_on_a_common_value_stops_early_and_says_how_early(engine, run_recipe):
    result = run_recipe(engine, "exists-count", "exists", rows=5000, match=10)
    read = result.plan.summary.key_scan.rows_read
    assert read < 100  # one admin in ten, spread through the table
    assert any(f"after reading {read:,} of the 5,000 rows" in n for n in result.notes)


def test_no_match_makes_exists_read_everything(engine, run_recipe):
    result = run_recipe(engine, "exists-count", "exists", rows=3000, match=0)
    assert result.rows.data == [[False]]
    assert result.plan.summary.rows_read == 3000
    assert any(n.startswith("No match: EXISTS read 3,000 rows") for n in result.notes)


def test_len_all_times_come_from_an_untraced_pass(engine, run_recipe):
    result = run_recipe(engine, "exists-count", "len-all", rows=20_000, match=100)
    assert result.ok, result.error
    assert result.query_count == 1  # the traced pass is not listed as the run's
    assert result.metrics["traced_statements"] == 1
    assert result.metrics["python_peak_kb"] > 1000
    traced, untraced = result.metrics["traced_ms"], result.elapsed_ms
    note = next(n for n in result.notes if n.startswith("Python allocated"))
    assert f"which took {traced:,.1f} ms against this run's {untraced:,.1f} ms" in note
    assert (f"×{traced / untraced:.1f} slower" in note) == (traced / untraced >= 1.2)


def test_measured_memory_never_traces_the_run_whose_times_are_shown(engine):
    """A variant that looks whether Python is tracing allocations: off in the run, on in the second pass."""
    probe = Recipe(
        slug="probe", title="Probe", section="Reading", summary="Probe.", params=(), measure_memory=True
    )
    seen = []

    @probe.variant
    def look(run, p):
        """Read a row and say whether allocations are being traced"""
        seen.append(tracemalloc.is_tracing())
        with run.session() as session:
            run.metric(
                "traced_while_shown", session.scalar(run.main(select(literal(tracemalloc.is_tracing()))))
            )
        return None

    result = runner.run(recipe=probe, variant="look", params={}, engine=engine)
    assert result.ok, result.error
    assert seen == [False, True]
    assert result.metrics["traced_while_shown"] is False
    assert result.metrics["traced_statements"] == 1 and result.query_count == 1


# --- eager-loading: SQLAlchemy's unique() error, and a forgotten second hop ---------------------
def test_joinedload_collection_without_unique_is_sqlalchemys_own_error(engine, run_recipe):
    result = run_recipe(engine, "eager-loading", "joinedload-without-unique", authors=8, books_per_author=3)
    assert not result.ok
    assert result.error.startswith("InvalidRequestError: The unique() method must be invoked on this Result")
    (joined,) = [s for s in result.statements if s.kind == "query"]
    assert joined.rowcount == 24  # the query ran; building the list is what was refused
    assert result.plan is not None
    assert any("The joined query ran and 24 rows came back" in n for n in result.notes)

    many_to_one = run_recipe(
        engine,
        "eager-loading",
        "joinedload-without-unique",
        authors=8,
        books_per_author=3,
        direction="books-author",
    )
    assert many_to_one.ok, many_to_one.error
    assert many_to_one.metrics["parents_loaded"] == 24


def test_a_forgotten_second_hop_moves_the_n_plus_one_down_a_level(engine, run_recipe):
    chained = run_recipe(engine, "eager-loading", "selectinload", authors=12, books_per_author=4, nested=True)
    forgot = run_recipe(engine, "eager-loading", "selectinload-one-hop", authors=12, books_per_author=4)
    assert chained.query_count == 3
    assert forgot.query_count == 2 + 12 * 4  # authors, books, then one query per book for its reviews
    shapes = Counter(s.shape for s in forgot.statements if s.kind == "query")
    shape, repeated = shapes.most_common(1)[0]
    assert repeated == 48 and "FROM reviews" in shape
    assert forgot.rows.data == chained.rows.data  # same page, 48 more round trips
    note = next(n for n in forgot.notes if "N+1" in n)
    assert "SELECT … FROM reviews, was sent 48 times" in note
    assert "one query per book" in note and "The books came in 1 query" in note
