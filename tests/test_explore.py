"""Reading results: plan analysis on real plans, statement grouping, sweeps, history and diffs."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import Run, Sandbox
from recipes.plan import summarize
from recipes.stats import statement_stats


def explain(engine, sql: str, *settings: str) -> list:
    """EXPLAIN ANALYZE JSON of `sql` from the sandbox role's own connection."""
    with engine.begin() as conn:
        for setting in settings:
            conn.execute(text(setting))
        return conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")).scalar()


@pytest.fixture
def seeded(engine, run_recipe):
    run_recipe(engine, "offset-pagination", "offset", rows=20_000)
    return engine


def test_exclusive_times_add_up_to_the_execution_time(seeded):
    plan = explain(seeded, "SELECT owner_id, count(*) FROM documents GROUP BY owner_id ORDER BY 2 DESC")
    summary = summarize(plan)
    assert len(summary.nodes) >= 3
    assert all(n.exclusive_ms >= 0 for n in summary.nodes)
    total = sum(n.exclusive_ms for n in summary.nodes)
    root = summary.nodes[0].inclusive_ms
    assert total == pytest.approx(root, rel=0.1, abs=0.05)


def test_seq_scan_and_filter_badges_come_from_a_real_plan(seeded):
    summary = summarize(explain(seeded, "SELECT * FROM documents WHERE title LIKE '%99%'"))
    scan = summary.key_scan
    assert scan.node_type == "Seq Scan"
    texts = [t for t, _ in scan.badges]
    assert any(t.startswith("Seq Scan over") for t in texts)
    assert any("removed by filter" in t for t in texts)
    assert scan.rows_read == 20_000


def test_misestimate_factor_and_direction(seeded):
    # created_at and id rise together, which the planner does not know: it multiplies selectivities
    summary = summarize(
        explain(
            seeded, "SELECT * FROM documents WHERE id < 3000 AND created_at > timestamptz '2024-01-01 05:00'"
        )
    )
    scan = summary.key_scan
    estimated, actual = scan.plan_rows * scan.loops, scan.actual_rows
    assert scan.misestimate == pytest.approx(
        max(estimated, actual) / max(min(estimated, actual), 1), rel=1e-6
    )
    assert scan.underestimated == (actual > estimated)


def test_sort_spilling_to_disk_is_flagged(seeded):
    summary = summarize(
        explain(seeded, "SELECT * FROM documents ORDER BY title, owner_id", "SET LOCAL work_mem = '64kB'")
    )
    sort = next(n for n in summary.nodes if n.node_type == "Sort")
    assert sort.spilled and "disk" in sort.spilled
    assert any("disk" in t for t, _ in sort.badges)


def test_heap_fetches_are_flagged_on_an_index_only_scan(seeded):
    with seeded.begin() as conn:
        conn.execute(text("CREATE INDEX ix_owner_only ON documents (owner_id)"))
        conn.execute(text("ANALYZE documents"))
    summary = summarize(
        explain(
            seeded,
            "SELECT owner_id FROM documents WHERE owner_id < 50",
            "SET LOCAL enable_bitmapscan = off",
            "SET LOCAL enable_seqscan = off",
        )
    )
    scan = summary.key_scan
    assert scan.node_type == "Index Only Scan"
    assert scan.heap_fetches > 0  # never vacuumed: the visibility map is empty
    assert any("heap fetches" in t for t, _ in scan.badges)


def test_statement_stats_group_the_n_plus_one(engine, run_recipe):
    result = run_recipe(engine, "eager-loading", "lazy", authors=9, books_per_author=2)
    stats = statement_stats(result.statements)
    assert stats.queries == 10
    assert stats.most_repeated == 9
    assert "10 queries, 9 of them the same shape" in stats.headline
    sizes = [g.size for g in stats.groups if g.first.kind == "query"]
    assert sizes == [1, 9]
    assert stats.explains and all(s.kind == "explain" for s in stats.explains)


@pytest.mark.django_db(transaction=True)
class TestHttp:
    def teardown_method(self):
        for box in Sandbox.objects.all():
            sandboxes.drop(box)

    def test_sweep_runs_point_by_point_and_draws_a_line_per_variant(self):
        client = Client()
        form = {
            "variant": "keyset",
            "rows": "2000",
            "sweep_param": "page",
            "sweep_from": "1",
            "sweep_to": "91",
            "sweep_points": "3",
            "sweep_y": "rows_read",
            "sweep_companions": "on",
        }
        first = client.post("/recipes/keyset-pagination/sweep", form, HTTP_HX_REQUEST="true").content.decode()
        vals = json.loads(re.search(r"hx-vals='([^']+)'", first).group(1))
        assert vals["step"] == "1"
        assert first.count("<polyline") == 4  # keyset, mismatched, offset, offset-unordered: the depth lines
        client.post("/recipes/keyset-pagination/sweep", {**form, **vals}, HTTP_HX_REQUEST="true")
        last = client.post(
            "/recipes/keyset-pagination/sweep", {**form, **vals, "step": "2"}, HTTP_HX_REQUEST="true"
        ).content.decode()
        assert 'id="sweep-done"' in last and "hx-trigger" not in last
        runs = Run.objects.filter(sweep=vals["sweep_id"])
        assert runs.count() == 12
        offset_reads = dict(
            runs.filter(recipe="offset-pagination", variant="offset").values_list("params__page", "rows_read")
        )
        keyset_reads = dict(runs.filter(variant="keyset").values_list("params__page", "rows_read"))
        assert offset_reads[91] > offset_reads[1]
        assert keyset_reads[91] <= keyset_reads[1] + 2

    def test_sweep_without_javascript_runs_every_point_and_json_has_series(self):
        client = Client()
        form = {
            "variant": "count",
            "rows": "1000",
            "sweep_param": "match",
            "sweep_from": "0",
            "sweep_to": "100",
            "sweep_points": "3",
            "sweep_y": "query_count",
        }
        data = client.post("/recipes/exists-count/sweep", form, HTTP_ACCEPT="application/json").json()
        assert {s["label"] for s in data["series"]} == {
            "exists-count · len-all",
            "exists-count · count",
            "exists-count · exists",
        }
        assert all([x for x, _ in s["points"]] == [0, 50, 100] for s in data["series"])
        page = client.post("/recipes/exists-count/sweep", form)
        assert page.status_code == 200 and b"<html" in page.content and b"sweep-done" in page.content

    def test_sweep_out_of_bounds_is_refused(self):
        client = Client()
        response = client.post(
            "/recipes/keyset-pagination/sweep",
            {
                "sweep_param": "page",
                "sweep_from": "0",
                "sweep_to": "10",
                "sweep_points": "3",
                "sweep_y": "db_ms",
            },
            HTTP_ACCEPT="application/json",
        )
        assert response.status_code == 400
        assert "sweep_from" in response.json()["errors"]
        response = client.post(
            "/recipes/keyset-pagination/sweep",
            {
                "sweep_param": "page",
                "sweep_from": "1",
                "sweep_to": "10",
                "sweep_points": "11",
                "sweep_y": "db_ms",
            },
            HTTP_ACCEPT="application/json",
        )
        assert "sweep_points" in response.json()["errors"]

    def test_history_reopen_diff_and_share_link(self):
        client = Client()
        client.post(
            "/recipes/keyset-pagination/run",
            {"variant": "keyset", "page": "30", "rows": "2000", "index": "none"},
        )
        html = client.post(
            "/recipes/keyset-pagination/run",
            {"variant": "keyset", "page": "30", "rows": "2000", "index": "composite"},
            HTTP_HX_REQUEST="true",
        ).content.decode()
        share = re.search(r'id="share-link" href="([^"]+)"', html).group(1).replace("&amp;", "&")
        page = client.get(share).content.decode()
        assert 'value="30"' in page and '<option value="composite" selected>' in page

        runs = client.get("/history", HTTP_ACCEPT="application/json").json()["runs"]
        assert [r["params"]["index"] for r in runs[:2]] == ["composite", "none"]
        newest, older = runs[0]["id"], runs[1]["id"]
        reopened = client.get(f"/runs/{newest}/").content.decode()
        assert 'id="query-count"' in reopened and "ix_documents_created_id" in reopened

        diff = client.get(f"/runs/diff?a={older}&b={newest}", HTTP_ACCEPT="application/json").json()
        changes = " ".join(diff["changes"])
        assert "index none → composite" in changes
        assert "Seq Scan" in changes  # the plan node that went away
        page = client.get(f"/runs/diff?a={older}&b={newest}")
        assert page.status_code == 200, page.content[:300]
        html = page.content.decode()
        assert html.count('class="results"') == 2 and "index none → composite" in html
        assert f'href="/runs/{older}/"' in html and f'href="/runs/{newest}/"' in html

        stranger = Client()
        assert stranger.get(f"/runs/{newest}/").status_code == 404
        assert stranger.get(f"/runs/diff?a={older}&b={newest}").status_code == 404


def test_pool_timeline_is_drawn_per_worker_from_measured_times(engine, run_recipe):
    from playground.web.charts import timeline_lanes

    result = run_recipe(
        engine,
        "connection-pool",
        "burst",
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.15,
        workers=3,
        hold_ms=100,
    )
    timeline = result.metrics["timeline"]
    assert [row[0] for row in timeline] == [1, 2, 3]
    lanes = timeline_lanes(timeline)
    gave_up = [lane for lane in lanes if lane.gave_up]
    assert len(gave_up) == result.metrics["timed_out"] >= 1  # one connection, 100 ms holds, 0.15 s wait
    ends = [lane.wait_x + lane.wait_w if lane.gave_up else lane.hold_x + lane.hold_w for lane in lanes]
    assert all(0 <= lane.wait_x <= 100 for lane in lanes)
    assert all(0 < end <= 100.31 for end in ends)  # a zero-length wait is drawn 0.3 % wide
    assert max(ends) == pytest.approx(100, abs=0.31)  # the last worker to finish ends the chart


@pytest.mark.django_db(transaction=True)
def test_the_history_panel_is_read_for_full_pages_only():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = Client()
    try:
        form = {"variant": "keyset", "rows": "1000"}
        with CaptureQueriesContext(connection) as partial:
            client.post("/recipes/keyset-pagination/run", form, HTTP_HX_REQUEST="true")
        with CaptureQueriesContext(connection) as page:
            html = client.post("/recipes/keyset-pagination/run", form).content.decode()

        def history_reads(queries):
            return [q for q in queries if 'FROM "playground_run"' in q["sql"] and "LIMIT 8" in q["sql"]]

        assert history_reads(partial.captured_queries) == []
        assert len(history_reads(page.captured_queries)) == 1  # read once, though the template uses it twice
        assert "Your recent runs" in html
    finally:
        for box in Sandbox.objects.all():
            sandboxes.drop(box)
