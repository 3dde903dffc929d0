"""Reaching Run, reading the results and the errors, at 1400 and 420 px, and an axe-core scan.

Runs use small tables; the checks before a run cover every recipe page, since that costs no run.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

import recipes
from tests.browser.helpers import axe_violations, sideways

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def run_button_in_view(tab: Page) -> bool:
    run = tab.get_by_role("button", name="Run", exact=True)
    box = run.bounding_box()
    height = tab.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def test_every_recipe_page_shows_run_without_scrolling_and_never_scrolls_sideways(sized_page, live_server):
    for slug in recipes.REGISTRY:
        sized_page.goto(f"{live_server.url}/recipes/{slug}/")
        assert run_button_in_view(sized_page), f"{slug}: Run is below the fold"
        assert sideways(sized_page) <= 0, f"{slug}: the page scrolls sideways by {sideways(sized_page)} px"
        labels = sized_page.locator(".variant span").all()
        form = sized_page.locator("form.run-form").bounding_box()
        for label in labels:
            box = label.bounding_box()
            right = box["x"] + box["width"]
            assert right <= form["x"] + form["width"] + 1, f"{slug}: a variant label overflows"


@pytest.mark.parametrize(
    "path",
    ["/recipes/timestamp-mixin/?rows=5", "/recipes/eager-loading/?authors=40"],
    ids=["timestamp", "eager"],
)
def test_after_a_run_run_is_still_reachable_and_focus_lands_on_the_results(sized_page, live_server, path):
    sized_page.goto(live_server.url + path)
    sized_page.get_by_role("button", name="Run", exact=True).click()
    expect(sized_page.locator("#query-count")).to_be_visible()
    sized_page.wait_for_function("document.activeElement && document.activeElement.id === 'results'")
    expect(sized_page.locator("#run-status")).to_contain_text("Results updated.")
    expect(sized_page.locator("#run-status")).to_contain_text("queries" if "eager" in path else "quer")
    sized_page.mouse.wheel(0, 2500)
    sized_page.wait_for_timeout(200)
    assert run_button_in_view(sized_page), "Run scrolled away with the results"
    assert sideways(sized_page) <= 0
    expect(sized_page.locator("#results h3", has_text="The code that ran")).to_be_visible()


def test_before_a_run_the_code_is_not_called_the_code_that_ran(page, live_server):
    page.goto(live_server.url + "/recipes/offset-pagination/")
    expect(page.locator("#results h3", has_text="The code this variant runs")).to_be_visible()
    expect(page.locator("#results")).not_to_contain_text("The code that ran")


def test_a_field_error_names_the_label_links_to_the_field_and_marks_it(page, live_server, console_errors):  # noqa: E501
    page.goto(live_server.url + "/recipes/offset-pagination/?rows=1000")
    page.evaluate("document.querySelector('form.run-form').noValidate = true")
    page.get_by_label("Page", exact=True).fill("0")
    page.get_by_role("button", name="Run", exact=True).click()
    problem = page.locator("#results .problem")
    expect(problem).to_contain_text("Page: Ensure this value is greater than or equal to 1.")
    expect(problem.locator("code")).to_have_count(0)  # no internal names like "page:"
    console_errors.clear()  # the 400 answer is logged by the browser
    problem.get_by_role("link", name="Page").click()
    expect(page.get_by_label("Page", exact=True)).to_be_focused()


def test_axe_finds_nothing_serious_on_any_kind_of_page(scheme_tab, live_server):
    page = scheme_tab
    base = live_server.url
    found: dict[str, list[str]] = {}
    page.goto(base + "/")
    found["shelf"] = axe_violations(page)

    page.goto(base + "/recipes/keyset-pagination/?rows=1000&page=5")
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("#query-count").wait_for()
    found["recipe with results"] = axe_violations(page)

    page.goto(base + "/recipes/keyset-pagination/?rows=1000&page=5&index=none")
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("#query-count").wait_for()

    page.goto(base + "/recipes/exists-count/?rows=1000")
    page.get_by_role("button", name="Compare all variants").click()
    page.locator("#comparison").wait_for()
    found["compare"] = axe_violations(page)

    page.goto(base + "/recipes/keyset-pagination/?rows=1000")
    page.get_by_label("to", exact=True).fill("40")
    page.get_by_label("Points", exact=True).fill("2")
    page.get_by_role("button", name="Sweep").click()
    page.locator("#sweep-done").wait_for()
    found["sweep"] = axe_violations(page)

    page.goto(base + "/history")
    found["history"] = axe_violations(page)
    ids = [int(i) for i in page.locator("input[name=a]").evaluate_all("els => els.map(e => e.value)")]
    page.goto(f"{base}/runs/diff?a={min(ids)}&b={max(ids)}")
    expect(page.locator("#changes")).to_be_visible()
    found["diff"] = axe_violations(page)
    assert not any(found.values()), found


OTHER_PAGES = ["/", "/tracks/", "/tracks/onboarding/1/", "/rooms/new", "/rooms/join", "/sql/"]


@pytest.mark.parametrize("path", OTHER_PAGES)
def test_the_other_pages_never_scroll_sideways_on_a_narrow_screen(page, live_server, path):
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(live_server.url + path)
    assert sideways(page) <= 0, f"{path} scrolls sideways by {sideways(page)} px"
