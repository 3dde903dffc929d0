"""The Performance shelf, measured: which scan served the search, who waited for the pool, which
index served which query, and that a search result reaches the page escaped."""

from __future__ import annotations

import statistics

import psycopg
import pytest
from django.template.loader import render_to_string
from sqlalchemy import text

import recipes
from playground import sandbox as sandboxes
from playground.templatetags.playground import cell
from playground.web.forms import RunForm
from recipes.plan import summarize
from recipes.results import HIGHLIGHT_START, HIGHLIGHT_STOP
from recipes.validation import InvalidParams
from tests.conftest import connect_kwargs

pytestmark = pytest.mark.django_db(transaction=True)


def node_types(result) -> list[str]:
    assert result.ok, result.error
    assert result.plan is not None and result.plan.json, result.plan
    return [f"{n.node_type}:{n.index or ''}" for n in summarize(result.plan.json).nodes]


# --- full-text search -----------------------------------------------------------------------
def test_gin_index_changes_the_scan(engine, run_recipe):
    indexed = run_recipe(engine, "full-text-search", "tsquery", index="expression-gin")
    bare = run_recipe(engine, "full-text-search", "tsquery", index="none")
    assert "Bitmap Index Scan:ix_articles_body_tsv" in node_types(indexed)
    assert not [n for n in node_types(bare) if "Bitmap Index" in n]
    assert "Seq Scan:" in node_types(bare)
    assert indexed.metrics["matches"] == bare.metrics["matches"] > 0


def test_generated_column_index_serves_the_stored_vector(engine, run_recipe):
    result = run_recipe(engine, "full-text-search", "tsquery", index="generated-column-gin")
    assert "Bitmap Index Scan:ix_articles_search_vector" in node_types(result)


def test_mismatched_config_bypasses_the_index(engine, run_recipe):
    result = run_recipe(engine, "full-text-search", "mismatched-config", index="expression-gin")
    assert not [n for n in node_types(result) if "Bitmap Index" in n]
    assert "Seq Scan:" in node_types(result)


def test_stemming_finds_what_ilike_misses(engine, run_recipe):
    ilike = run_recipe(engine, "full-text-search", "ilike", q="raising exceptions")
    fts = run_recipe(engine, "full-text-search", "tsquery", q="raising exceptions")
    assert fts.metrics["matches"] > ilike.metrics["matches"]


def test_every_variant_finds_articles_with_the_default_search(engine, run_recipe):
    for variant in ("ilike", "tsquery", "mismatched-config"):
        result = run_recipe(engine, "full-text-search", variant)
        assert result.ok, result.error
        assert result.metrics["matches"] > 0 and result.rows.total > 0, (variant, result.notes)
    with engine.connect() as conn:  # every article found its paragraph
        assert conn.execute(text("SELECT count(*) FROM articles")).scalar() == 2000


def test_ilike_note_says_what_its_plan_did(engine, run_recipe):
    assert "reads the whole table" not in recipes.get("full-text-search").summary
    result = run_recipe(engine, "full-text-search", "ilike")
    scan = summarize(result.plan.json).key_scan
    line = result.notes[-1]
    assert line.startswith(f"{scan.label}: {scan.rows_read:,} of 2,000 rows read"), line
    if scan.index:  # walked in id order until LIMIT had its rows: the index served the order only
        assert scan.rows_read < 2000 and "until LIMIT had its rows" in line
        assert f"{scan.index} served ORDER BY only; no index served the search." in line
    else:
        assert line.endswith("No index served this query."), line


def test_a_search_that_finds_nothing_says_why_and_what_to_try(engine, run_recipe):
    def nothing(variant, **params):
        result = run_recipe(engine, "full-text-search", variant, **params)
        assert result.ok and result.metrics["matches"] == 0, result.notes
        return result.notes[1]

    line = nothing("ilike", q="raising exceptions")
    assert line.startswith(
        "No article contains the text 'raising exceptions' (ILIKE looks for it as one piece)."
    )
    assert "'raising' is in " in line and "each word is there, but never as this text" in line
    tried = line.rsplit("Try '", 1)[1].split("'")[0]
    assert run_recipe(engine, "full-text-search", "ilike", q=tried).metrics["matches"] > 0

    line = nothing("tsquery", q="the of and")
    assert "Left out as stop words: 'the', 'of', 'and', so the query is empty." in line

    line = nothing("tsquery", q="zebracorn")
    assert "'zebracorn' is in none." in line
    tried = line.rsplit("Try '", 1)[1].split("'")[0]
    assert run_recipe(engine, "full-text-search", "tsquery", q=tried).metrics["matches"] > 0

    line = nothing("tsquery", q="raising exceptions", config="simple", index="generated-column-gin")
    assert "holds english lexemes, not simple ones" in line
    assert line.endswith("Try the english config, the one the text was stored with.")
    found = run_recipe(
        engine, "full-text-search", "tsquery", q="raising exceptions", index="generated-column-gin"
    )
    assert found.metrics["matches"] > 0


def test_snippets_carry_only_the_highlight_markers(engine, run_recipe):
    result = run_recipe(engine, "full-text-search", "tsquery", q="exception", headline=True)
    snippets = [row[-1] for row in result.rows.data]
    assert snippets and all(HIGHLIGHT_START in s and HIGHLIGHT_STOP in s for s in snippets)
    assert "rank" in result.rows.columns
    ranks = [row[2] for row in result.rows.data]
    assert ranks == sorted(ranks, reverse=True)


def test_cell_filter_escapes_everything_but_the_markers():
    html = cell(f"<script>alert(1)</script> {HIGHLIGHT_START}word{HIGHLIGHT_STOP} & {HIGHLIGHT_START}x")
    assert html == "&lt;script&gt;alert(1)&lt;/script&gt; <mark>word</mark> &amp; x"
    assert cell(42) == 42


def test_script_in_the_text_or_the_query_is_rendered_escaped(engine, run_recipe):
    recipe = recipes.get("full-text-search")
    run_recipe(engine, "full-text-search", "tsquery")  # seeds the articles
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO articles (topic, body) VALUES ('evil', :b)"),
            {"b": "A zebracorn appears <script>alert('body')</script> <b>bold</b> zebracorn."},
        )
    q = "<script>alert(1)</script> zebracorn"
    result = run_recipe(engine, "full-text-search", "tsquery", q=q)
    assert result.ok, result.error
    assert result.metrics["matches"] == 1
    html = render_to_string(
        "recipe.html",
        {"recipe": recipe, "form": RunForm(recipe, {"q": q}), "result": result, "problem": None},
    )
    assert "<script>alert" not in html
    assert "<b>bold" not in html
    assert "&lt;script&gt;alert(&#x27;body&#x27;)" in html or "&lt;script&gt;alert" in html
    assert "<mark>zebracorn</mark>" in html


# --- connection pool ------------------------------------------------------------------------
POOL = {"pool_size": 1, "max_overflow": 0, "workers": 2, "hold_ms": 300}


@pytest.mark.slow
def test_pool_of_one_makes_the_second_worker_wait(engine, run_recipe):
    result = run_recipe(engine, "connection-pool", "burst", pool_timeout=5, **POOL)
    assert result.ok, result.error
    waited = sorted(row[1] for row in result.rows.data)
    assert waited[1] >= 0.8 * POOL["hold_ms"]  # it waited for the first to give the connection back
    assert result.metrics["peak_server_connections"] == 1
    assert result.metrics["timed_out"] == 0


@pytest.mark.slow
def test_pool_of_one_times_out_the_second_worker(engine, run_recipe):
    result = run_recipe(engine, "connection-pool", "burst", pool_timeout=0.1, **POOL)
    outcomes = sorted(row[5] for row in result.rows.data)
    assert outcomes[0] == "ok"
    assert outcomes[1].startswith("timed out") and "QueuePool limit" in outcomes[1]
    assert result.metrics["timed_out"] == 1


def test_overflow_lets_a_burst_through_and_the_server_sees_it(engine, run_recipe):
    result = run_recipe(
        engine,
        "connection-pool",
        "burst",
        pool_size=1,
        max_overflow=2,
        workers=3,
        hold_ms=200,
        pool_timeout=5,
    )
    assert result.metrics["connections_opened"] == 3
    assert result.metrics["peak_server_connections"] == 3
    assert max(row[1] for row in result.rows.data) < 150


@pytest.mark.parametrize("pre_ping", [False, True])
def test_dropped_connections_fail_without_pre_ping(engine, run_recipe, pre_ping):
    result = run_recipe(
        engine,
        "connection-pool",
        "dropped-connections",
        pool_size=2,
        workers=2,
        hold_ms=20,
        pool_pre_ping=pre_ping,
    )
    assert result.ok, result.error
    assert result.metrics["connections_killed"] == 2
    if pre_ping:
        assert result.metrics["errors"] == 0
        assert result.metrics["connections_opened"] >= 1
    else:
        assert result.metrics["errors"] >= 1


def test_null_pool_opens_one_connection_per_worker(engine, run_recipe):
    result = run_recipe(engine, "connection-pool", "null-pool", workers=3, hold_ms=100)
    assert result.metrics["connections_opened"] == 3
    assert all(row[3] for row in result.rows.data)


def test_running_out_of_connections_is_a_clear_message(sandbox, engine, run_recipe):
    url = engine.url
    extra = [psycopg.connect(**connect_kwargs(url)) for _ in range(4)]  # another tab's work, say
    try:
        result = run_recipe(engine, "connection-pool", "null-pool", workers=8)
    finally:
        for conn in extra:
            conn.close()
    assert result.ok is False
    assert "ConnectionBudgetError" in result.error and "connections" in result.error


def test_the_recipe_refuses_pools_bigger_than_a_run_may_open():
    with pytest.raises(InvalidParams) as refused:
        recipes.get("connection-pool").validate({"pool_size": 10, "max_overflow": 10, "workers": 10})
    assert "max_overflow" in refused.value.errors


# --- indexes --------------------------------------------------------------------------------
def test_expression_index_serves_lower_email_and_plain_one_does_not(engine, run_recipe):
    plain = run_recipe(engine, "indexes", "email", query="email-lower")
    expression = run_recipe(engine, "indexes", "lower-email", query="email-lower")
    assert "Seq Scan:" in node_types(plain)
    assert not [n for n in node_types(plain) if n.endswith("users_email_key")]
    assert [n for n in node_types(expression) if n.endswith("ix_users_email_lower")]
    assert plain.rows.data == expression.rows.data and len(plain.rows.data) == 1


def test_equality_first_composite_serves_owner_newest(engine, run_recipe):
    none = run_recipe(engine, "indexes", "none", query="owner-newest", owners=20)
    composite = run_recipe(engine, "indexes", "owner-created", query="owner-newest", owners=20)
    assert [n for n in node_types(composite) if n.endswith("ix_documents_owner_created")]
    assert not [n for n in node_types(composite) if "Sort" in n]
    assert [n for n in node_types(none) if "Sort" in n]
    assert none.rows.data == composite.rows.data
    assert summarize(composite.plan.json).rows_read < summarize(none.plan.json).rows_read


def test_partial_index_serves_live_rows_and_is_smaller(engine, run_recipe):
    partial = run_recipe(engine, "indexes", "partial-live", query="live-newest")
    full = run_recipe(engine, "indexes", "created-owner", query="live-newest")
    assert [n for n in node_types(partial) if n.endswith("ix_documents_live_created")]
    assert partial.metrics["index_kb"] < full.metrics["index_kb"]


def test_index_is_built_once_analyzed_and_weighed(engine, run_recipe):
    first = run_recipe(engine, "indexes", "owner-created")
    again = run_recipe(engine, "indexes", "owner-created")
    sent = [s.sql for s in first.statements if s.kind == "query"]
    assert any(s.startswith("CREATE INDEX ix_documents_owner_created") for s in sent)
    assert sent.index("ANALYZE documents") > next(
        i for i, s in enumerate(sent) if s.startswith("CREATE INDEX")
    )
    assert "build_and_analyze_ms" in first.metrics and "build_and_analyze_ms" not in again.metrics
    assert first.metrics["index_kb"] > 0
    assert first.metrics["insert_ms_with_index"] > 0 and first.metrics["insert_ms_without_index"] > 0
    with engine.connect() as conn:  # the timed inserts were rolled back
        assert conn.execute(text("SELECT count(*) FROM documents")).scalar() == 2000


def test_both_column_orders_are_told_apart_by_pages_and_searches_not_rows(engine, run_recipe):
    notes = {}
    for variant in ("owner-created", "created-owner"):
        result = run_recipe(engine, "indexes", variant, query="owner-newest", rows=200_000, owners=1000)
        summary = summarize(result.plan.json)
        scan = summary.key_scan
        assert [n for n in summary.nodes if n.index] and result.rows.total == 20
        buffers = scan.shared_hit + scan.shared_read
        line = result.notes[0]
        assert "rows read" not in line, line  # 20 read for 20 returned, whichever the order
        assert f"20 rows returned, {buffers:,} buffers (8 kB pages) touched" in line, line
        searches = [n.index_searches for n in summary.nodes if n.index_searches is not None]
        if searches:  # Postgres 18 reports each scan's descents into the index
            assert f"in {sum(searches)} index search" in line, line
        notes[variant] = buffers
    assert notes["created-owner"] > notes["owner-created"]


def test_insert_costs_are_medians_of_repeated_tries_and_noise_is_called_noise(engine, run_recipe):
    from recipes.performance.indexes import REPEATS, middle_half, write_line

    result = run_recipe(engine, "indexes", "owner-created", batch=200)
    m = result.metrics
    assert len(m["insert_ms_with_index_runs"]) == len(m["insert_ms_without_index_runs"]) == REPEATS
    assert m["insert_ms_with_index"] == statistics.median(m["insert_ms_with_index_runs"])
    (low, high), (low_without, high_without) = (
        middle_half(m["insert_ms_with_index_runs"]),
        middle_half(m["insert_ms_without_index_runs"]),
    )
    line = result.notes[-1]
    if low <= high_without and low_without <= high:
        assert line.endswith("within run-to-run noise.") and "%" not in line, line
    else:
        assert line.endswith("% with the index."), line
    # The two outcomes of the rule, on timings that leave no doubt either way.
    assert write_line(100, [10.4, 9.0, 12.5, 10.0, 11.0], [13.1, 8.8, 12.0, 9.5, 14.0]).endswith(
        "within run-to-run noise."
    )
    assert write_line(100, [5.0, 5.2, 5.1, 9.0, 5.3], [2.0, 2.1, 1.9, 2.2, 6.0]).endswith(
        ": +148% with the index."
    )


def test_sandbox_role_connection_limit_is_what_the_pool_reads(sandbox, engine, run_recipe):
    with engine.connect() as conn:
        limit = conn.execute(text("SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user")).scalar()
    from django.conf import settings

    assert limit == settings.PLAYGROUND["CONNECTION_LIMIT"]
    assert sandboxes.role_password(sandbox.role)
