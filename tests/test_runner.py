"""The runner and statement capture, on a real sandbox."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

import recipes
from playground.running import runner
from playground.running.capture import Capture
from recipes.base import Recipe

pytestmark = pytest.mark.django_db(transaction=True)


def throwaway_recipe(section: str = "Writing") -> Recipe:
    return Recipe(slug="throwaway", title="Throwaway", section=section, summary="", params=())


# --- capture --------------------------------------------------------------------------------
def test_offset_run_captures_every_statement_in_order(engine, run_recipe):
    page, size = 3, 7
    result = run_recipe(engine, "offset-pagination", "offset", page=page, size=size)
    assert result.ok, result.error

    kinds = [s.kind for s in result.statements]
    assert kinds == ["transaction", "query", "query", "transaction", "explain", "explain"]
    begin, page_stmt, count_stmt, rollback, explain_json, explain_text = result.statements
    assert begin.sql == "BEGIN"
    assert rollback.sql == "ROLLBACK"

    assert page_stmt.main and not count_stmt.main
    assert page_stmt.sql.lstrip().upper().startswith("SELECT")
    limit = re.search(r"LIMIT %\((\w+)\)s", page_stmt.sql)
    offset = re.search(r"OFFSET %\((\w+)\)s", page_stmt.sql)
    assert limit and offset, page_stmt.sql
    assert page_stmt.parameters[limit.group(1)] == size
    assert page_stmt.parameters[offset.group(1)] == (page - 1) * size
    assert page_stmt.rowcount == size
    assert page_stmt.duration_ms is not None and page_stmt.duration_ms > 0

    assert "count(" in count_stmt.sql.lower()
    assert count_stmt.rowcount == 1

    for stmt, prefix in ((explain_json, runner.EXPLAIN_JSON), (explain_text, runner.EXPLAIN_TEXT)):
        assert stmt.sql == prefix + page_stmt.sql
        assert stmt.parameters == page_stmt.parameters

    queries = [s for s in result.statements if s.kind == "query"]
    assert result.query_count == len(queries) == 2
    assert result.db_ms > 0
    assert result.db_ms == pytest.approx(sum(s.duration_ms for s in queries), abs=0.01)
    assert result.rows is not None and result.rows.total == size
    assert result.metrics["total_rows"] > 0


def test_run_returns_a_real_plan(engine, run_recipe):
    result = run_recipe(engine, "offset-pagination", "offset", page=2)
    assert result.plan is not None
    top = result.plan.json[0]
    assert "Plan" in top and "Execution Time" in top
    assert top["Plan"]["Node Type"] == "Limit"
    assert "Execution Time" in result.plan.text
    assert "Limit" in result.plan.text


def test_concurrent_captures_on_one_engine_stay_apart(engine):
    rounds = 15
    barrier = threading.Barrier(2, timeout=10)

    def work(tag: str) -> list[str]:
        with Capture() as capture, engine.connect() as conn:
            for i in range(rounds):
                barrier.wait()  # both threads send their i-th statement at the same time
                conn.execute(text(f"SELECT '{tag}-{i}'"))
        return [s.sql for s in capture.statements]

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(work, ["a", "b"])

    assert a == ["BEGIN", *[f"SELECT 'a-{i}'" for i in range(rounds)], "ROLLBACK"]
    assert b == ["BEGIN", *[f"SELECT 'b-{i}'" for i in range(rounds)], "ROLLBACK"]


def test_only_statements_inside_the_capture_are_recorded(engine):
    with engine.connect() as conn:
        conn.execute(text("SELECT 'before'"))
        with Capture() as capture:
            conn.execute(text("SELECT 'inside'"))
        conn.execute(text("SELECT 'after'"))
    assert [s.sql for s in capture.statements] == ["SELECT 'inside'"]


# --- EXPLAIN of a write -----------------------------------------------------------------------
def test_an_explain_that_fails_shows_why_and_leaves_the_connection_usable(engine):
    """Both EXPLAINs go in one pipeline: when the first fails, the server skips the rest, the run
    is shown without its plan and says why, and the pooled connection works for the next run."""
    recipe = throwaway_recipe()

    @recipe.setup
    def prepare(setup, p):
        setup.conn.execute(text("DROP TABLE IF EXISTS notes"))
        setup.conn.execute(text("CREATE TABLE notes (id int GENERATED ALWAYS AS IDENTITY, body text)"))
        setup.conn.execute(text("INSERT INTO notes (body) VALUES ('only')"))

    @recipe.variant
    def divide_then_empty(run, p):
        """Divide by the row count, then delete the rows: the EXPLAIN divides by zero"""
        with run.connect() as conn:
            conn.execute(run.main(text("SELECT 1 / (SELECT count(*)::int FROM notes)")))
            conn.execute(text("DELETE FROM notes"))
            conn.commit()

    @recipe.variant
    def divide(run, p):
        """Divide by the row count, which the setup made one"""
        with run.connect() as conn:
            conn.execute(run.main(text("SELECT 1 / (SELECT count(*)::int FROM notes)")))

    failed = runner.run(recipe=recipe, variant="divide-then-empty", params={}, engine=engine)
    assert failed.ok, failed.error  # the variant itself ran
    assert failed.plan is not None and failed.plan.json == []
    assert failed.plan.text.startswith("EXPLAIN failed") and "division by zero" in failed.plan.text
    assert [s.kind for s in failed.statements].count("explain") == 2

    again = runner.run(recipe=recipe, variant="divide", params={}, engine=engine)
    assert again.ok, again.error
    assert again.plan is not None and "Execution Time" in again.plan.json[0]
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is False
        assert conn.execute(text("SELECT count(*) FROM notes")).scalar_one() == 1


def test_explain_of_a_write_leaves_no_trace(engine):
    recipe = throwaway_recipe()

    @recipe.setup
    def prepare(setup, p):
        setup.conn.execute(text("DROP TABLE IF EXISTS notes"))
        setup.conn.execute(text("CREATE TABLE notes (id int GENERATED ALWAYS AS IDENTITY, body text)"))

    @recipe.variant
    def insert_three(run, p):
        """Insert three rows"""
        with run.connect() as conn:
            conn.execute(run.main(text("INSERT INTO notes (body) VALUES ('a'), ('b'), ('c')")))
            conn.commit()

    result = runner.run(recipe=recipe, variant="insert-three", params={}, engine=engine)
    assert result.ok, result.error

    with engine.connect() as conn:
        bodies = conn.execute(text("SELECT body FROM notes ORDER BY id")).scalars().all()
    assert bodies == ["a", "b", "c"]

    explains = [s for s in result.statements if s.kind == "explain"]
    assert len(explains) == 2
    assert all("INSERT INTO notes" in s.sql for s in explains)
    assert [s.sql for s in result.statements if s.kind == "transaction"] == ["BEGIN", "COMMIT"]
    # ANALYZE really executed the insert (three rows went in) before the rollback.
    assert result.plan is not None
    top = result.plan.json[0]["Plan"]
    assert top["Node Type"] == "ModifyTable"
    assert sum(child["Actual Rows"] for child in top["Plans"]) == 3


def test_main_statement_with_positional_parameters_is_explained(engine, run_recipe):
    seeded = run_recipe(engine, "offset-pagination", "offset")
    assert seeded.ok, seeded.error
    recipe = throwaway_recipe("Reading")

    @recipe.variant
    def driver_sql(run, p):
        """Driver-level SQL with positional parameters"""
        with run.connect() as conn:
            conn.execution_options(playground_main=True).exec_driver_sql(
                "SELECT id FROM documents WHERE title LIKE %s ORDER BY id LIMIT %s", ("Document 1%", 5)
            )

    result = runner.run(recipe=recipe, variant="driver-sql", params={}, engine=engine)
    assert result.ok, result.error
    main = next(s for s in result.statements if s.main)
    assert list(main.parameters) == ["Document 1%", 5]
    assert result.plan is not None and result.plan.json, result.plan
    assert "Execution Time" in result.plan.json[0]
    assert [s.kind for s in result.statements].count("explain") == 2


# --- errors ---------------------------------------------------------------------------------
def test_a_database_error_is_reported_not_raised(engine):
    recipe = throwaway_recipe("Reading")

    @recipe.variant
    def missing_table(run, p):
        """Read a table that is not there"""
        with run.connect() as conn:
            conn.execute(run.main(text("SELECT * FROM no_such_table")))

    result = runner.run(recipe=recipe, variant="missing-table", params={}, engine=engine)
    assert result.ok is False
    assert result.error is not None
    assert "SQLSTATE 42P01" in result.error
    assert "no_such_table" in result.error
    assert "Traceback" not in result.error
    assert "sqlalche.me" not in result.error
    assert result.plan is None
    failed = [s for s in result.statements if s.kind == "query"]
    assert [s.sql for s in failed] == ["SELECT * FROM no_such_table"]
    assert failed[0].rowcount is None
    assert result.query_count == 1


def test_sqlalchemy_cache_markers_are_captured(engine, run_recipe):
    first = run_recipe(engine, "offset-pagination", "offset", page=2)
    again = run_recipe(engine, "offset-pagination", "offset", page=3)
    page_sql = [s for s in again.statements if s.main][0]
    assert page_sql.cache.startswith("cached since")  # same statement shape, compiled once
    assert all(s.cache for s in first.statements if s.kind == "query")


# --- every variant --------------------------------------------------------------------------
# Built from the registry: a module listed in recipes.MODULES is covered with nothing to add here.
VARIANTS = [(recipe, variant) for recipe in recipes.REGISTRY.values() for variant in recipe.variant_list]


@pytest.mark.parametrize(("recipe", "variant"), VARIANTS, ids=[f"{r.slug}:{v.slug}" for r, v in VARIANTS])
def test_every_variant_runs_with_its_defaults(engine, recipe, variant):
    params = {"rows": 1000} if "rows" in recipe.defaults() else {}
    result = runner.run(recipe=recipe, variant=variant.slug, params=params, engine=engine)
    if variant.fails_on_purpose:  # declared on the variant: @recipe.variant(fails=..., fails_with=...)
        assert result.ok is False
        assert variant.fails_with in (result.error or "")
    else:
        assert result.ok, result.error
    if variant.main:
        assert result.plan is not None and result.plan.json, result.plan
        assert "Execution Time" in result.plan.json[0]
    assert result.query_count >= 1
    assert result.to_json()["recipe"] == recipe.slug
