"""A recipe page in Chromium: runs swapped in place, variants, field errors, compare, sweep and share."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from playground.models import Run, Sandbox
from tests.browser.helpers import SHOWN_COLOURS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def run_from_shelf(page: Page, base_url: str, title: str, depth_label: str) -> None:
    """Shelf → recipe page → fill the form → Run, checking the page is never reloaded."""
    page.goto(base_url + "/")
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page.locator("#results .placeholder")).to_be_visible()
    page.get_by_label(depth_label, exact=True).fill("50")
    page.get_by_label("Table rows", exact=True).fill("1000")
    url = page.url
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("#query-count").wait_for()
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the results"
    assert page.url == url


def test_keyset_then_offset_run_in_place(page, live_server):
    run_from_shelf(page, live_server.url, "Keyset pagination", "Page depth")
    results = page.locator("#results")
    expect(page.locator("#query-count")).to_have_text("1")
    expect(results.locator("table.plan")).to_be_visible()
    expect(results.locator(".badge.main", has_text="the query")).to_be_visible()
    expect(results.locator("table.rows tbody tr")).to_have_count(20)
    expect(results.locator("pre.source").first).to_contain_text("def keyset")
    expect(results).to_contain_text("seeded documents")
    # The form stays as it was submitted, ready for the next run.
    expect(page.get_by_label("Page depth", exact=True)).to_have_value("50")
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_enabled()

    page.get_by_role("link", name="Recipe Playground").click()
    run_from_shelf(page, live_server.url, "Offset pagination", "Page")
    expect(page.locator("#query-count")).to_have_text("2")
    expect(results.locator("table.plan")).to_be_visible()
    expect(results.locator(".badge.main", has_text="the query")).to_have_count(1)
    expect(results.locator("table.rows tbody tr")).to_have_count(20)
    expect(results.locator("pre.source").first).to_contain_text("def offset")

    assert Sandbox.objects.count() == 1


def test_switching_variant_shows_its_code(page, live_server):
    page.goto(live_server.url + "/recipes/keyset-pagination/?rows=1000&size=5")
    page.get_by_label("ORDER BY created_at DESC, id ASC").check()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#query-count")).to_have_text("6")  # five pages, then the check
    source = page.locator("#results pre.source").first
    expect(source).to_contain_text("def keyset_mismatched_order")
    expect(page.locator("#results table.rows tbody tr")).to_have_count(5)  # one row per page
    expect(page.locator("#results ul.notes")).to_contain_text("shown twice")
    expect(page.locator("#results ul.notes")).to_contain_text("Incremental Sort")


def test_prepared_statements_chart_each_call_and_name_its_plan(page, live_server):
    page.goto(live_server.url + "/recipes/prepared-statements/?rows=1000")
    page.get_by_role("button", name="Run", exact=True).click()
    chart = page.locator("#per-call")
    expect(chart.locator(".bar-row")).to_have_count(15)
    expect(chart.locator("rect.generic")).to_have_count(5)
    expect(page.locator("#results ul.notes")).to_contain_text("calls 11–15: generic plan")


def test_reset_button_confirms_and_flashes(page, live_server):
    page.goto(live_server.url + "/recipes/offset-pagination/?rows=1000")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#query-count")).to_have_text("2")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset my sandbox").click()
    expect(page.locator("#flash")).to_contain_text("Sandbox reset")

    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#results")).to_contain_text("seeded documents")


def test_without_javascript_the_form_posts_and_shows_a_full_page(page_without_js, live_server):
    page = page_without_js
    page.goto(live_server.url + "/recipes/keyset-pagination/")
    page.get_by_label("Page depth", exact=True).fill("50")
    page.get_by_label("Table rows", exact=True).fill("1000")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url("**/recipes/keyset-pagination/run")
    expect(page.locator("#query-count")).to_have_text("1")
    expect(page.get_by_role("heading", level=1)).to_have_text("Keyset pagination")
    expect(page.locator("#results table.plan")).to_be_visible()
    expect(page.locator("#results table.rows tbody tr")).to_have_count(20)
    expect(page.locator("#results pre.source").first).to_contain_text("def keyset")
    expect(page.get_by_label("Page depth", exact=True)).to_have_value("50")


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_field_error_is_swapped_into_the_results(page, live_server, settings, console_errors, debug):
    settings.DEBUG = debug  # DEBUG adds django-htmx's error-page helper to every page
    page.goto(live_server.url + "/recipes/offset-pagination/?rows=1000")
    page.evaluate("window.__marker = 1")
    # The browser's own checks (min=1) would stop the submission before the server sees it.
    page.evaluate("document.querySelector('form.run-form').noValidate = true")
    page.get_by_label("Page", exact=True).fill("0")
    with page.expect_response("**/recipes/offset-pagination/run") as answer:
        page.get_by_role("button", name="Run", exact=True).click()
    assert answer.value.status == 400
    expect(page.locator("#results")).to_contain_text("Nothing ran")
    assert console_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    console_errors.clear()
    results = page.locator("#results")
    expect(results).to_contain_text("Ensure this value is greater than or equal to 1.")
    assert page.evaluate("window.__marker") == 1
    expect(page.get_by_role("heading", level=1)).to_have_text("Offset pagination")
    expect(page.locator("form.run-form")).to_be_visible()
    assert not Sandbox.objects.exists()

    page.get_by_label("Page", exact=True).fill("2")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#query-count")).to_have_text("2")


def test_narrow_screen_keeps_the_form_off_the_results(page, live_server):
    page.set_viewport_size({"width": 420, "height": 800})
    page.goto(live_server.url + "/recipes/keyset-pagination/?rows=1000&page=50")
    page.get_by_role("button", name="Run", exact=True).click()
    count = page.locator("#query-count")
    expect(count).to_have_text("1")

    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"

    page.locator("table.plan").scroll_into_view_if_needed()
    form = page.locator("form.run-form").bounding_box()
    plan = page.locator("table.plan").bounding_box()
    assert form is not None and plan is not None
    overlap = min(form["y"] + form["height"], plan["y"] + plan["height"]) - max(form["y"], plan["y"])
    assert overlap <= 0, "the form covers the results"


def test_a_default_keyset_sweep_completes_on_a_fresh_session_with_every_point(page, live_server, settings):
    """The sweep exactly as the page offers it: the default table (200,000 rows), the default range
    (to its last page), the most points the form allows, every related line."""
    # Next to no refill while it runs: the sweep must fit in what a fresh session holds.
    settings.PLAYGROUND = {**settings.PLAYGROUND, "RUNS_PER_MINUTE": 1}
    page.goto(live_server.url + "/recipes/keyset-pagination/")
    points = page.get_by_label("Points", exact=True)
    points.fill(points.get_attribute("max"))
    total = int(points.input_value())
    page.get_by_role("button", name="Sweep").click()
    page.locator("#sweep-done").wait_for(timeout=180_000)
    expect(page.locator("#sweep-title")).to_contain_text(f"{total} of {total} points")
    expect(page.locator("#results polyline")).to_have_count(4)
    expect(page.locator("#results svg.lines circle")).to_have_count(4 * total)
    expect(page.locator("#sweep-measured")).to_contain_text("One run per point")
    header = page.locator("#sweep-table thead th").all_inner_texts()
    assert header[1] == "1" and header[-1] == "10,000", header  # 200,000 rows ÷ 20 a page
    # Every label inside the chart's box, as the browser draws it (no tick or title cut off).
    outside = page.evaluate(
        """() => {
          const svg = document.querySelector('#results svg.lines').getBoundingClientRect();
          return [...document.querySelectorAll('#results svg.lines text')]
            .map(t => [t.textContent, t.getBoundingClientRect()])
            .filter(([, r]) => r.left < svg.left - 0.5 || r.right > svg.right + 0.5
                            || r.top < svg.top - 0.5 || r.bottom > svg.bottom + 0.5)
            .map(([text]) => text);
        }"""
    )
    assert outside == []
    assert Run.objects.filter(sweep__isnull=False).count() == 4 * total


def test_on_a_narrow_screen_the_compare_bars_keep_their_width(page, live_server):
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(live_server.url + "/recipes/exists-count/?rows=1000")
    page.get_by_role("button", name="Compare all variants").click()
    bars = page.locator("#results svg.bar")
    expect(bars).to_have_count(3)
    widths = [bars.nth(i).bounding_box()["width"] for i in range(3)]
    assert min(widths) > 250, widths  # they had none left beside the label and the figures


def test_compare_sweep_and_share_link(page, live_server):
    base = live_server.url
    page.goto(base + "/recipes/eager-loading/?authors=12")
    page.get_by_role("button", name="Compare all variants").click()
    table = page.locator("#comparison")
    table.wait_for()
    for variant in ("lazy", "selectinload", "joinedload", "raiseload"):
        expect(table).to_contain_text(variant)
    expect(page.locator("#results svg.bar")).to_have_count(8)  # one per variant
    ink, paper = page.locator("#freeze-compare").evaluate(SHOWN_COLOURS)
    assert ink != paper, "the freeze button's text is the colour of what it sits on"

    page.goto(base + "/recipes/keyset-pagination/?rows=1000")
    page.get_by_label("to", exact=True).fill("45")
    page.get_by_label("Points", exact=True).fill("3")
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Sweep").click()
    page.locator("#sweep-done").wait_for()
    assert page.evaluate("window.__marker") == 1
    expect(page.locator("#results polyline")).to_have_count(4)  # the depth lines: two keyset, two offset
    expect(page.locator("#sweep-title")).to_contain_text("3 of 3 points")

    page.goto(base + "/recipes/keyset-pagination/?page=7&index=none&rows=1000")
    page.get_by_role("button", name="Run", exact=True).click()
    link = page.locator("#share-link")
    link.wait_for()
    other = page.context.browser.new_context()
    try:
        shared = other.new_page()
        shared.goto(base + link.get_attribute("href"))
        expect(shared.get_by_label("Page depth", exact=True)).to_have_value("7")
        expect(shared.get_by_label("Index", exact=True)).to_have_value("none")
        expect(shared.get_by_label("Table rows", exact=True)).to_have_value("1000")
    finally:
        other.close()
