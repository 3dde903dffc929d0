"""What the pagination recipes claim, measured from the plans Postgres returns."""

from __future__ import annotations

from collections import Counter

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


# --- turning pages: ties and a cursor that disagrees with the ORDER BY ------------------------
def tie_broken(engine) -> list[tuple]:
    """Every (created_at, id), newest first with ties broken by id: each row has one place."""
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(text("SELECT created_at, id FROM documents ORDER BY 1 DESC, 2 DESC"))
        ]


def counted(order: list[tuple], pages: list[list[tuple]], start: int) -> dict[str, int]:
    """Rows shown twice, and rows passed over (from `start` to the furthest row shown) never shown."""
    shown = [row for page in pages for row in page]
    reached = max(order.index(row) for row in shown)
    passed = order[start : reached + 1]
    return {
        "shown_twice": len(shown) - len(set(shown)),
        "never_shown": len(set(passed) - set(shown)),
        "rows_passed": len(passed),
    }


def replay_cursor(order: list[tuple], pages: int, size: int, page_order, below) -> list[list[tuple]]:
    """Turn pages as the variant does, in Python: `page_order` sorts, `below(row, last)` filters."""
    walked, last = [], None
    for _ in range(pages):
        rows = sorted((r for r in order if last is None or below(r, last)), key=page_order)[:size]
        walked.append(rows)
        last = rows[-1]
    return walked


def test_dataset_ties_end_pages_of_twenty_inside_a_tie(engine, run_recipe):
    result = run_recipe(engine, "keyset-pagination", "keyset-created-at-only", size=SIZE)
    assert result.ok, result.error
    sizes = Counter(created for created, _ in tie_broken(engine))
    assert max(sizes.values()) == 3 and SIZE % 3
    assert result.metrics["largest_tie"] == 3


@pytest.mark.parametrize("size", [SIZE, 15])
def test_mismatched_order_cursor_repeats_and_skips_rows(engine, run_recipe, size):
    result = run_recipe(engine, "keyset-pagination", "keyset-mismatched-order", size=size, pages=6)
    assert result.ok, result.error
    order = tie_broken(engine)
    # ORDER BY created_at DESC, id ASC; WHERE (created_at, id) < (last.created_at, last.id)
    walked = replay_cursor(order, 6, size, lambda r: (-r[0].timestamp(), r[1]), lambda r, last: r < last)
    expected = counted(order, walked, 0)
    assert {k: result.metrics[k] for k in expected} == expected
    assert expected["shown_twice"] > 0
    if size == 15:  # pages that end mid-tie also shut its later rows out
        assert expected["never_shown"] > 0
    assert result.query_count == 6 + 1  # the pages, then one query to check them
    verb = "was" if expected["shown_twice"] == 1 else "were"
    assert (
        f"{expected['shown_twice']:,} {verb} shown twice and {expected['never_shown']:,}" in result.notes[0]
    )
    assert [row[0] for row in result.rows.data] == list(range(1, 7))


def test_mismatched_order_plan_is_an_incremental_sort_and_the_note_says_what_it_cost(engine, run_recipe):
    result = run_recipe(engine, "keyset-pagination", "keyset-mismatched-order", page=30, size=SIZE)
    summary = summary_of(result)
    sort = next(n for n in summary.nodes if "Sort" in n.node_type)
    assert sort.node_type == "Incremental Sort"
    assert "Presorted Key: created_at" in sort.details
    assert summary.rows_read <= SIZE + 3  # the index still serves created_at: one page and a tie
    note = next(n for n in result.notes if n.startswith("The first page's order came from"))
    assert "an Incremental Sort (Presorted Key: created_at)" in note
    assert f"{summary.rows_read:,} rows read, {summary.execution_ms:.2f} ms" in note

    unindexed = run_recipe(engine, "keyset-pagination", "keyset-mismatched-order", size=SIZE, index="none")
    plain = summary_of(unindexed)
    assert next(n for n in plain.nodes if "Sort" in n.node_type).node_type == "Sort"
    assert plain.rows_read == ROWS
    assert any(
        f"a Sort (Sort Method: top-N heapsort) over Seq Scan on documents: {ROWS:,} rows read" in n
        for n in unindexed.notes
    )


def test_created_at_only_cursor_steps_over_the_rest_of_a_tie(engine, run_recipe):
    result = run_recipe(engine, "keyset-pagination", "keyset-created-at-only", size=SIZE, page=3)
    assert result.ok, result.error
    order = tie_broken(engine)
    start = 2 * SIZE
    # The walk starts below page 2's last created_at; the index hands tied rows over id DESC.
    below_cursor = [r for r in order if r[0] < order[start - 1][0]]
    walked = replay_cursor(
        below_cursor, 5, SIZE, lambda r: (-r[0].timestamp(), -r[1]), lambda r, last: r[0] < last[0]
    )
    expected = counted(order, walked, start)
    assert {k: result.metrics[k] for k in expected} == expected
    assert expected["never_shown"] > 0 and expected["shown_twice"] == 0
    assert any(f"0 were shown twice and {expected['never_shown']:,} never shown" in n for n in result.notes)


def test_offset_by_created_at_alone_agrees_with_an_index_and_not_with_a_sort(engine, run_recipe):
    indexed = run_recipe(engine, "offset-pagination", "offset-created-at-only", size=SIZE, pages=10)
    assert indexed.ok, indexed.error
    assert (indexed.metrics["shown_twice"], indexed.metrics["never_shown"]) == (0, 0)
    assert summary_of(indexed).key_scan.node_type in {"Index Scan", "Index Only Scan"}
    assert any("read in the index's order" in n for n in indexed.notes)
    assert any(n.startswith("These pages happened to agree") for n in indexed.notes)

    sorted_ = run_recipe(
        engine, "offset-pagination", "offset-created-at-only", size=SIZE, pages=10, index="none"
    )
    assert sorted_.ok, sorted_.error
    # Replay the same ten OFFSET queries and count independently (one sort per page, as in the run).
    order = tie_broken(engine)
    with engine.connect() as conn:
        pages = [
            [
                tuple(r)
                for r in conn.execute(
                    text("SELECT created_at, id FROM documents ORDER BY created_at DESC LIMIT :n OFFSET :o"),
                    {"n": SIZE, "o": k * SIZE},
                )
            ]
            for k in range(10)
        ]
    expected = counted(order, pages, 0)
    assert {k: sorted_.metrics[k] for k in expected} == expected
    assert expected["shown_twice"] + expected["never_shown"] > 0
    assert any("a Sort (Sort Method: top-N heapsort)" in n for n in sorted_.notes)
    assert sorted_.query_count == 10 + 1


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
