"""Sweeps: paid for as a whole, complete whatever the form offers, keep their points when one fails,
and start where the lesson is (inside the table, plotting a count, labelled with units)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from django.test import Client
from sqlalchemy import text

import recipes
from playground import sandbox as sandboxes
from playground.models import Run, RunAllowance, Sandbox
from playground.running import limits, service, sweeps
from playground.web.charts import LABEL_PX, TICK_PX, line_chart, text_width
from tests.probes import recipe_of, sandboxed_session

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}
JSON = {"HTTP_ACCEPT": "application/json"}
SMALL = {"variant": "keyset", "rows": "1000", "size": "20", "index": "composite"}
SWEEP = {**SMALL, "sweep_param": "page", "sweep_from": "1", "sweep_to": "50", "sweep_companions": "on"}
"""Keyset and offset pagination over the 50 pages of a small table: 4 lines."""


@pytest.fixture
def client(settings) -> Iterator[Client]:
    # No refill to speak of: what a sweep may cost is exactly the burst a fresh session holds.
    settings.PLAYGROUND = {**settings.PLAYGROUND, "RUN_BURST": 30, "RUNS_PER_MINUTE": 1}
    yield Client()
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


def form_field(html: str, name: str) -> str:
    """The <input> tag of `name` on a page."""
    return re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)


def attribute(tag: str, name: str) -> str | None:
    found = re.search(rf'\b{name}="([^"]*)"', tag)
    return found.group(1) if found else None


def next_step(html: str) -> dict | None:
    found = re.search(r"hx-vals='([^']+)'", html)
    return json.loads(found.group(1)) if found else None


def drive(client: Client, slug: str, form: dict) -> list:
    """Run a sweep the way the page does, one request per point; every response, in order."""
    responses = [client.post(f"/recipes/{slug}/sweep", form, **HTMX)]
    while responses[-1].status_code == 200 and (vals := next_step(responses[-1].content.decode())):
        responses.append(client.post(f"/recipes/{slug}/sweep", {**form, **vals}, **HTMX))
        assert len(responses) <= sweeps.MAX_POINTS
    return responses


def sweep_form(html: str) -> dict[str, str]:
    """The sweep settings a recipe page offers, as its form would send them."""
    y = re.search(r'<select name="sweep_y"[^>]*>.*?<option value="(\w+)" selected>', html, re.S).group(1)
    return {
        "sweep_param": "page",
        "sweep_from": attribute(form_field(html, "sweep_from"), "value"),
        "sweep_to": attribute(form_field(html, "sweep_to"), "value") or "",
        "sweep_points": attribute(form_field(html, "sweep_points"), "value"),
        "sweep_y": y,
        "sweep_companions": "on",
    }


# --- 1. the run allowance ----------------------------------------------------------------------
def test_the_most_points_the_form_offers_complete_on_a_fresh_session(client):
    page = client.get("/recipes/keyset-pagination/?rows=1000").content.decode()
    most = attribute(form_field(page, "sweep_points"), "max")
    form = {**SMALL, **sweep_form(page), "sweep_points": most, "sweep_to": "50"}
    responses = drive(client, "keyset-pagination", form)
    assert [r.status_code for r in responses] == [200] * int(most), responses[-1].content[:300]
    last = responses[-1].content.decode()
    assert 'id="sweep-done"' in last
    assert last.count("<polyline") == 4 and last.count("<circle") == 4 * int(most)


def test_a_sweep_is_paid_for_as_a_whole_by_its_first_request(client):
    form = {**SWEEP, "sweep_points": "5"}
    first = client.post("/recipes/keyset-pagination/sweep", form, **HTMX)
    bucket = RunAllowance.objects.get(key=client.session.session_key)
    assert 30 - bucket.tokens == pytest.approx(4 * 5, abs=0.5)  # 4 lines × 5 points, at once
    vals = next_step(first.content.decode())
    assert limits.sweep_credit(vals["sweep_id"]) == 4 * 4  # the points to come are paid for
    responses = drive(client, "keyset-pagination", {**form, **vals})
    assert all(r.status_code == 200 for r in responses)
    bucket.refresh_from_db()
    assert 30 - bucket.tokens == pytest.approx(20, abs=0.5)  # nothing more was spent
    assert limits.sweep_credit(vals["sweep_id"]) == 0
    assert Run.objects.filter(sweep=vals["sweep_id"]).count() == 20


def test_asking_for_a_point_twice_is_paid_for_again(client):
    form = {**SWEEP, "sweep_points": "2"}
    vals = next_step(client.post("/recipes/keyset-pagination/sweep", form, **HTMX).content.decode())
    for _ in range(2):
        client.post("/recipes/keyset-pagination/sweep", {**form, **vals}, **HTMX)
    bucket = RunAllowance.objects.get(key=client.session.session_key)
    assert 30 - bucket.tokens == pytest.approx(8 + 4, abs=0.5)


def test_a_sweep_the_allowance_cannot_pay_for_is_refused_before_anything_runs(client):
    for page in range(1, 9):  # 8 of the 30 runs spent: 22 left
        assert client.post("/recipes/keyset-pagination/run", {**SMALL, "page": page}).status_code == 200
    form = {**SWEEP, "sweep_points": "6"}
    for headers in (HTMX, JSON):
        refused = client.post("/recipes/keyset-pagination/sweep", form, **headers)
        assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
        assert Run.objects.filter(sweep__isnull=False).count() == 0
    message = refused.json()["error"]
    assert "needs 24 runs" in message and "holds 22" in message, message


def test_the_form_offers_no_more_points_than_a_fresh_session_can_pay_for(client):
    for recipe in recipes.REGISTRY.values():
        if not any(p.sweepable for p in recipe.params):
            continue
        most = sweeps.max_points(recipe)
        assert 2 <= most <= sweeps.MAX_POINTS
        assert most * sweeps.widest_lines(recipe) <= 30, recipe.slug
        page = client.get(f"/recipes/{recipe.slug}/").content.decode()
        assert attribute(form_field(page, "sweep_points"), "max") == str(most), recipe.slug
        assert f"At most {most}" in page
    keyset = recipes.get("keyset-pagination")
    assert sweeps.max_points(keyset) == 7  # 4 lines: keyset, mismatched, offset, offset-unordered
    with pytest.raises(sweeps.InvalidParams) as refused:
        sweeps.validate_sweep(keyset, {"sweep_points": "10", "sweep_to": "50"})
    assert refused.value.errors["sweep_points"] == [
        "At most 7 points: this recipe's sweep draws up to 4 lines, and 4 × 7 = 28 runs is what fits "
        "in the 30 runs a session may start at once."
    ]


def test_the_points_drawn_stay_when_a_point_fails(client, settings):
    form = {**SWEEP, "sweep_points": "3"}
    first = client.post("/recipes/keyset-pagination/sweep", form, **HTMX)
    vals = next_step(first.content.decode())
    settings.PLAYGROUND = {**settings.PLAYGROUND, "RUNS_PER_PROCESS": 1, "RUN_SLOT_WAIT_SECONDS": 0.2}
    with sandboxes.run_slot():  # the only run slot is taken: the point waits, then gives up
        failed = client.post("/recipes/keyset-pagination/sweep", {**form, **vals}, **HTMX)
        as_json = client.post("/recipes/keyset-pagination/sweep", {**form, **vals}, **JSON)
    html = failed.content.decode()
    assert failed.status_code == 200
    assert html.count("<polyline") == 4 and html.count("<circle") == 4  # point 1 of every line
    stopped = re.search(r'id="sweep-stopped"><strong>([^<]+)', html).group(1)
    assert stopped.startswith("Point 2 of 3 did not run") and "busy" in stopped
    assert "hx-trigger" not in html and 'id="sweep-done"' not in html
    data = as_json.json()
    assert as_json.status_code == 200 and data["ok"] is False and "busy" in data["error"]
    assert [len(s["points"]) for s in data["series"]] == [1, 1, 1, 1]
    # What did not run is given back: 4 lines × 1 point ran, and the credit is gone.
    bucket = RunAllowance.objects.get(key=client.session.session_key)
    assert 30 - bucket.tokens == pytest.approx(4, abs=0.5)
    assert limits.sweep_credit(vals["sweep_id"]) == 0


def test_a_failing_first_point_is_refused_like_a_run(client, settings):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "RUNS_PER_PROCESS": 1, "RUN_SLOT_WAIT_SECONDS": 0.2}
    form = {**SWEEP, "sweep_points": "3"}
    with sandboxes.run_slot():
        refused = client.post("/recipes/keyset-pagination/sweep", form, **JSON)
    assert refused.status_code == 503 and "busy" in refused.json()["error"]


# --- 2. defaults that show the lesson ----------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "last_page"), [("", 10_000), ("?rows=2000&size=50", 40), ("?rows=1010", 51)]
)
def test_the_default_range_ends_at_the_last_page_of_the_table_the_form_holds(client, query, last_page):
    page = client.get(f"/recipes/keyset-pagination/{query}").content.decode()
    to = form_field(page, "sweep_to")
    assert attribute(to, "value") in (None, "") and attribute(to, "placeholder") == str(last_page)
    assert f"({last_page:,} for the values shown)" in page


def test_a_default_sweep_stays_inside_the_table_and_plots_rows_read(client):
    page = client.get("/recipes/keyset-pagination/").content.decode()
    form = {**SMALL, "rows": "2000", "size": "25", **sweep_form(page)}
    data = client.post("/recipes/keyset-pagination/sweep", form, **JSON).json()
    assert data["y"] == "rows_read" and data["repeats"] == 1
    assert data["values"][0] == 1 and data["values"][-1] == 80  # 2,000 rows ÷ 25 a page
    assert len(data["values"]) == int(form["sweep_points"]) == 6
    assert (data["x_label"], data["y_label"]) == ("Page depth", "Rows read by the plan (rows)")
    reads = {s["label"]: dict(s["points"]) for s in data["series"]}
    offset, keyset = reads["offset-pagination · offset"], reads["keyset-pagination · keyset"]
    assert offset[80] > 10 * offset[1]  # OFFSET walks past every skipped row
    assert keyset[80] <= keyset[1] + 2  # keyset seeks: one page whatever the depth


def test_a_timed_sweep_keeps_the_median_of_three_runs(client):
    form = {**SWEEP, "sweep_points": "2"}
    data = client.post("/recipes/keyset-pagination/sweep", {**form, "sweep_y": "db_ms"}, **JSON).json()
    assert data["repeats"] == 3 and data["y_label"] == "Database time (ms)"
    assert Run.objects.filter(sweep=data["sweep"]).count() == 4 * 2  # one kept per line and point
    page = client.post("/recipes/keyset-pagination/sweep", {**form, "sweep_y": "db_ms"}).content.decode()
    assert "Each point is the median of 3 runs." in page


@pytest.fixture
def session(transactional_db):
    yield from sandboxed_session()


def test_a_point_plotting_a_time_keeps_the_middle_of_three_runs_and_a_count_takes_one(session):
    sleeps = []

    def sleepy(run, p):
        """Sleep a little longer or shorter each time"""
        with run.connect() as conn:
            conn.execute(text("SELECT pg_sleep(:s)"), {"s": (0.09, 0.0, 0.045)[len(sleeps) % 3]})
        sleeps.append(1)

    probe, sweep = recipe_of(sleepy), uuid.uuid4()
    timed = service.run_point(session, probe, "probe", {}, sweep=sweep, y="db_ms")
    assert len(sleeps) == 3 and 40 <= timed.db_ms < 85  # neither the 0 ms run nor the 90 ms one
    assert list(Run.objects.filter(sweep=sweep).values_list("db_ms", flat=True)) == [timed.db_ms]
    service.run_point(session, probe, "probe", {}, sweep=sweep, y="query_count")
    assert len(sleeps) == 4 and Run.objects.filter(sweep=sweep).count() == 2


def test_sweep_settings_declared_by_a_recipe_are_checked():
    from recipes.base import Param, Recipe, SweepDefaults

    page = Param("page", "int", 1, min=1, max=10, sweepable=True)
    with pytest.raises(ValueError, match="cannot plot"):
        Recipe("x", "X", "Reading", "", (page,), sweep_defaults=SweepDefaults(y="buffers!"))
    with pytest.raises(ValueError, match="not sweepable"):
        Recipe("x", "X", "Reading", "", (page,), sweep_defaults=SweepDefaults(ends={"size": len}))


# --- the chart's geometry ----------------------------------------------------------------------
@pytest.mark.parametrize("top", [9, 1_000_000, 1_234_567.5, 0.25])
def test_no_label_of_a_chart_is_cut_off(top):
    chart = line_chart(
        {"a · b": [(1, 0), (top, top)], "c · d": [(1, top / 2)]},
        x_label="Page depth",
        y_label="Rows read by the plan (rows)",
    )
    for x, label in chart.x_ticks:  # centred under their point
        half = text_width(label, TICK_PX) / 2
        assert x - half >= 0 and x + half <= chart.width, label
    for _, label in chart.y_ticks:  # right-aligned 6 px left of the axis, right of the y title
        assert chart.left - 6 - text_width(label, TICK_PX) >= LABEL_PX + 4, label
    assert text_width(chart.y_label, LABEL_PX) <= chart.bottom - chart.top
    x_title, baseline = chart.x_title_at
    assert text_width(chart.x_label, LABEL_PX) / 2 <= min(x_title, chart.width - x_title)
    assert chart.bottom + 16 + 4 <= baseline - LABEL_PX  # the x title sits below the tick labels
    assert all(chart.left <= cx <= chart.right for s in chart.series for cx, _, _ in s.dots)
    assert all(chart.top <= cy <= chart.bottom for s in chart.series for _, cy, _ in s.dots)


def test_an_emptied_to_means_the_end_of_the_data_only_where_the_recipe_says_where_it_is():
    keyset, exists = recipes.get("keyset-pagination"), recipes.get("exists-count")
    spec = sweeps.validate_sweep(
        keyset, {"sweep_to": "", "sweep_points": "2"}, params={"rows": 5000, "size": 50}
    )
    assert spec.values == [1, 100]
    with pytest.raises(sweeps.InvalidParams) as refused:
        sweeps.validate_sweep(exists, {"sweep_param": "match", "sweep_to": ""})
    assert refused.value.errors == {
        "sweep_to": ["This field is empty: enter a value (the default is 1000000)."]
    }
