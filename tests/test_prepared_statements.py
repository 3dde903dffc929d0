"""prepared-statements, measured: psycopg's automatic prepare turns a fast EXISTS on a skewed column
into a slow one on the same connection, and both ways out keep it fast."""

from __future__ import annotations

import re
import statistics

import pytest
from django.test import Client

from playground import sandbox as sandboxes
from playground.models import Sandbox
from recipes.plan import summarize

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 100_000
"""Big enough for a Seq Scan to take milliseconds while an index finds the pending jobs at once."""


def kinds(result) -> list[str]:
    assert result.ok, result.error
    return [plan for _, _, plan in result.metrics["per_call"]]


def test_auto_prepare_switches_to_the_generic_plan_after_five_prepared_calls(engine, run_recipe):
    result = run_recipe(engine, "prepared-statements", "auto-prepare", rows=ROWS)
    assert kinds(result) == ["unprepared"] * 5 + ["custom"] * 5 + ["generic"] * 5
    last = result.rows.data[-1]
    assert (last[3], last[4]) == (5, 5)  # pg_prepared_statements: custom_plans, generic_plans
    calls = result.metrics["per_call"]
    slow = statistics.median(ms for _, ms, plan in calls if plan == "generic")
    fast = statistics.median(ms for _, ms, plan in calls if plan != "generic")
    assert slow > 3 * fast, (slow, fast)

    # The plan cache on the calls' connection holds a Seq Scan that reads up to the pending jobs...
    assert result.metrics["cached_plan"].startswith("Seq Scan on jobs")
    read = int(re.search(r"([\d,]+) rows? read", result.metrics["cached_plan"]).group(1).replace(",", ""))
    assert read >= ROWS - 10
    # ...while the same statement replayed on a fresh connection is planned for 'pending'.
    fresh = summarize(result.plan.json)
    assert fresh.key_scan.index == "ix_jobs_status" and fresh.rows_read <= 10
    notes = " ".join(result.notes)
    assert "calls 1–5: sent unprepared; calls 6–10: custom plan; calls 11–15: generic plan" in notes
    assert f"{fast:.2f} ms while planned for 'pending', {slow:.2f} ms with the generic plan" in notes
    assert result.query_count == 2 * 15  # each call, then the look at pg_prepared_statements


def test_prepare_threshold_none_never_prepares(engine, run_recipe):
    result = run_recipe(engine, "prepared-statements", "never-prepare", rows=ROWS)
    assert kinds(result) == ["unprepared"] * 15
    assert "cached_plan" not in result.metrics
    assert "calls 1–15: sent unprepared." in result.notes


def test_force_custom_plan_prepares_yet_plans_every_call_for_its_value(engine, run_recipe):
    result = run_recipe(engine, "prepared-statements", "force-custom-plan", rows=ROWS, calls=20)
    assert kinds(result) == ["unprepared"] * 5 + ["custom"] * 15
    assert (result.rows.data[-1][3], result.rows.data[-1][4]) == (15, 0)
    assert result.metrics["cached_plan"].startswith("Index Only Scan using ix_jobs_status")
    assert "SET plan_cache_mode = force_custom_plan" in [s.sql for s in result.statements]


def test_the_page_draws_one_bar_per_call():
    client = Client()
    response = client.post("/recipes/prepared-statements/run", {"variant": "auto-prepare", "rows": ROWS})
    try:
        assert response.status_code == 200
        html = response.content.decode()
        chart = html.split('id="per-call"', 1)[1].split("</figure>", 1)[0]
        assert chart.count('class="bar-row"') == 15
        assert chart.count('class="generic"') == 5 and chart.count('class="custom"') == 5
        assert "generic plan" in html
    finally:
        for box in Sandbox.objects.all():
            sandboxes.drop(box)
