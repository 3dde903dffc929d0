"""Headline figures: run-wide beside the main query's, each defined, and compare's columns."""

from __future__ import annotations

import re
from html import escape

import pytest
from django.test import Client

from playground import sandbox as sandboxes
from playground.models import Sandbox
from recipes.figures import DEFINITIONS
from recipes.results import RunResult, Statement


def test_lazy_loading_fetches_every_row_the_eager_loaders_fetch(engine, run_recipe):
    """Lazy's main plan reads the 9 authors only; the whole run fetches their books as well, in 9
    more statements where selectinload needs 1."""
    authors, books = 9, 2
    lazy = run_recipe(engine, "eager-loading", "lazy", authors=authors, books_per_author=books)
    eager = run_recipe(engine, "eager-loading", "selectinload", authors=authors, books_per_author=books)
    assert lazy.figures.rows_read == authors
    assert lazy.figures.rows_fetched == eager.figures.rows_fetched == authors + authors * books
    assert (lazy.figures.queries, eager.figures.queries) == (1 + authors, 2)
    assert lazy.to_json()["figures"]["rows_fetched"] == authors + authors * books


def test_writes_are_not_counted_as_rows_fetched(engine, run_recipe):
    result = run_recipe(engine, "bulk-insert", "executemany", rows=300)
    assert result.ok, result.error
    assert result.figures.rows_fetched < 300  # the 300 inserted rows did not come back


def _result(**figures) -> RunResult:
    statement = Statement(sql="SELECT 1", parameters=None, duration_ms=figures["db_ms"], rowcount=1)
    return RunResult(
        recipe="upsert",
        variant="on-conflict-race",
        params={},
        ok=True,
        error=None,
        rows=None,
        statements=[statement],
        query_count=1,
        plan=None,
        **figures,
    )


def test_database_time_above_wall_time_is_explained_from_the_figures():
    over = _result(elapsed_ms=130.0, db_ms=186.0).figures
    assert over.db_exceeds_wall
    assert "186.0 ms" in over.db_vs_wall and "130.0 ms" in over.db_vs_wall
    assert _result(elapsed_ms=130.0, db_ms=40.0).figures.db_vs_wall is None


@pytest.mark.django_db(transaction=True)
class TestPages:
    def teardown_method(self):
        for box in Sandbox.objects.all():
            sandboxes.drop(box)

    def test_the_result_defines_every_headline_figure(self):
        html = (
            Client()
            .post(
                "/recipes/eager-loading/run",
                {"variant": "lazy", "authors": "6", "books_per_author": "2", "direction": "authors-books"},
                HTTP_HX_REQUEST="true",
            )
            .content.decode()
        )
        assert re.search(r'id="rows-fetched">18<', html)
        assert re.search(r'id="rows-read">6<', html)
        assert "rows fetched, whole run" in html and "rows read, main query" in html
        for definition in DEFINITIONS.values():
            assert escape(definition) in html

    def test_compare_shows_rows_read_and_charts_work_not_query_counts(self):
        html = (
            Client()
            .post(
                "/recipes/keyset-pagination/compare",
                {"variant": "keyset", "rows": "2000", "page": "40", "index": "composite"},
                HTTP_HX_REQUEST="true",
            )
            .content.decode()
        )
        assert "rows read (main query)" in html and "buffers (main query)" in html
        assert "Rows read by the main query (blue)" in html
        widths = [float(w) for w in re.findall(r'width="([\d.]+)" class="q"', html)]
        assert len(widths) >= 2 and min(widths) < max(widths)  # the offset-style variant reads far more
