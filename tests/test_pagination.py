"""What the pagination recipes claim, measured from the plans Postgres returns."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from recipes.plan import PlanSummary, summarize
from recipes.results import RunResult
from tests.conftest import ROWS

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 20


def summary_of(result: RunResult) -> PlanSummary:
    assert result.ok, result.error
    assert result.plan is not None and result.plan.json, result.plan
    return summarize(result.plan.json)


def ids_of(result: RunResult) -> list[int]:
    assert result.ok, result.error
    assert result.rows is not None
    return [row[0] for row in result.rows.data]


def test_offset_reads_more_the_deeper_the_page(engine, run_recipe):
    shallow = run_recipe(engine, "offset-pagination", "offset", page=1, size=SIZE)
    deep = run_recipe(engine, "offset-pagination", "offset", page=40, size=SIZE)
    assert len(ids_of(shallow)) == len(ids_of(deep)) == SIZE

    read_shallow, read_deep = summary_of(shallow).rows_read, summary_of(deep).rows_read
    assert read_shallow < read_deep
    assert read_deep >= (40 - 1) * SIZE + SIZE


def test_keyset_with_the_composite_index_reads_one_page_at_any_depth(engine, run_recipe):
    deep_page = ROWS // SIZE - 10
    for page in (1, deep_page):
        result = run_recipe(engine, "keyset-pagination", "keyset", page=page, size=SIZE, index="composite")
        assert len(ids_of(result)) == SIZE
        summary = summary_of(result)
        assert summary.rows_read <= SIZE + 2, (page, summary.rows_read)

    scans = summary.scans
    assert len(scans) == 1
    assert scans[0].node_type in {"Index Scan", "Index Only Scan"}
    assert scans[0].index == "ix_documents_created_id"
    assert not [n for n in summary.nodes if "Sort" in n.node_type]


def test_keyset_without_an_index_reads_the_whole_table(engine, run_recipe):
    for page in (1, ROWS // SIZE - 10):
        result = run_recipe(engine, "keyset-pagination", "keyset", page=page, size=SIZE, index="none")
        assert len(ids_of(result)) == SIZE
        summary = summary_of(result)
        assert summary.rows_read >= 0.9 * ROWS, (page, summary.rows_read)
        assert [n.node_type for n in summary.scans] == ["Seq Scan"]


@pytest.mark.parametrize("index", ["composite", "created_at", "none"])
def test_keyset_returns_the_pages_offset_returns(engine, run_recipe, index):
    last_page = ROWS // SIZE
    for page in (1, 2, 37, last_page, last_page + 1, last_page + 5):
        by_offset = ids_of(run_recipe(engine, "offset-pagination", "offset", page=page, size=SIZE))
        by_keyset = ids_of(
            run_recipe(engine, "keyset-pagination", "keyset", page=page, size=SIZE, index=index)
        )
        assert by_keyset == by_offset, page
        if page <= last_page:
            assert len(by_offset) == SIZE
        else:
            assert by_offset == []


# --- plan.summarize -------------------------------------------------------------------------
def correlated_subquery_plan(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
                "SELECT d.id, (SELECT count(*) FROM documents o WHERE o.owner_id = d.owner_id) "
                "FROM documents d WHERE d.id <= 40"
            )
        ).scalar_one()


@pytest.mark.parametrize("which", ["offset-deep-page", "correlated-subquery"])
def test_exclusive_times_add_up_to_the_root(engine, run_recipe, which):
    result = run_recipe(engine, "offset-pagination", "offset", page=40, size=SIZE)
    assert result.ok, result.error
    assert result.plan is not None
    plan_json = result.plan.json
    if which == "correlated-subquery":
        plan_json = correlated_subquery_plan(engine)
        assert any(n.get("Parent Relationship") == "SubPlan" for n in plan_json[0]["Plan"].get("Plans", []))

    summary = summarize(plan_json)
    assert len(summary.nodes) >= 2
    for node in summary.nodes:
        assert 0 <= node.exclusive_ms <= node.inclusive_ms + 1e-9, node
    root = summary.nodes[0].inclusive_ms
    total = sum(n.exclusive_ms for n in summary.nodes)
    assert total == pytest.approx(root, rel=0.1, abs=0.05)
    assert 0 <= sum(n.share for n in summary.nodes) <= 1.1
