"""A track walked end to end in Chromium, a wrong prediction included; predicting without JavaScript."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from playground.models import StepProgress
from tests.browser.helpers import SERIOUS, axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def step_done(page: Page, done: int, total: int) -> None:
    expect(page.locator("#track-progress .progress-text")).to_contain_text(f"{done} of {total} steps done")
    expect(page.locator("#track-progress progress")).to_have_attribute("value", str(done))


def test_the_onboarding_track_end_to_end(page, live_server):
    base = live_server.url
    page.goto(base + "/")
    page.locator(".shelf-tracks").get_by_role(
        "link", name="First steps: one recipe from each section"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("First steps: one recipe from each section")
    page.get_by_role("link", name="Start →").click()

    # Step 1: a wrong guess. The step still counts as done; the guess is scored wrong.
    expect(page.get_by_role("heading", level=1)).to_have_text("Modelling: who sets updated_at?")
    expect(page.locator(".guidance")).to_contain_text("plain SQL UPDATE")
    page.evaluate("window.__marker = 1")
    page.get_by_label("raw-update writes 5 memo(s). On how many will updated_at move?").fill("5")
    page.get_by_role("button", name="Predict and run").click()
    answer = page.locator("#answer")
    expect(answer).to_contain_text("Not this time")
    expect(page.locator("#guess")).to_have_text("5")
    expect(page.locator("#truth")).to_have_text("0")
    expect(page.locator("#query-count")).to_have_text("3")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the results"
    step_done(page, 1, 4)
    expect(page.locator("#track-progress")).to_contain_text("first guess right 0 of 1")

    # Step 2: a challenge, missed with count(*), then passed with EXISTS.
    page.locator("#next-step").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reading: is there any admin?")
    page.get_by_label("SELECT count(*)").check()
    page.get_by_role("button", name="Try it with the form's variant").click()
    expect(page.locator("#verdict")).to_contain_text("Not yet")
    expect(page.locator("#verdict li.fail")).to_contain_text("rows read by the main query ≤ 100")
    step_done(page, 1, 4)
    page.get_by_label("SELECT EXISTS").check()
    page.get_by_role("button", name="Try it with the form's variant").click()
    expect(page.locator("#verdict")).to_contain_text("Passed")
    step_done(page, 2, 4)

    # Steps 3 and 4: right guesses, the first sent with Enter.
    page.locator("#next-step").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Writing: how many INSERTs?")
    page.locator(".question input").fill("4")
    page.locator(".question input").press("Enter")
    expect(page.locator("#answer")).to_contain_text("Right")
    step_done(page, 3, 4)

    page.locator("#next-step").click()
    page.locator(".question input").fill("3")
    page.get_by_role("button", name="Predict and run").click()
    expect(page.locator("#answer")).to_contain_text("Right")
    step_done(page, 4, 4)
    expect(page.locator("#track-progress")).to_contain_text("first guess right 2 of 3")

    page.locator("#next-step").click()
    expect(page.locator("ol.steps li.done")).to_have_count(4)
    expect(page.locator("ol.steps")).to_contain_text("first guess wrong")
    assert StepProgress.objects.filter(done=True).count() == 4


def test_a_step_page_fits_a_narrow_screen(page, live_server):
    page.set_viewport_size({"width": 420, "height": 800})
    page.goto(live_server.url + "/tracks/n-plus-one-and-pagination/1/")
    page.locator(".question input").fill("81")
    page.get_by_role("button", name="Predict and run").click()
    expect(page.locator("#answer")).to_contain_text("Right")
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"


def test_enter_in_a_guess_predicts_rather_than_runs(page, live_server):
    page.goto(live_server.url + "/recipes/eager-loading/?authors=15")
    page.get_by_label("How many queries will lazy loading send for 15 authors?").fill("16")
    page.get_by_label("How many queries will lazy loading send for 15 authors?").press("Enter")
    expect(page.locator("#answer")).to_contain_text("Right")
    expect(page.locator("#truth")).to_have_text("16")


def test_predict_then_run_without_javascript(page_without_js, live_server):
    page = page_without_js
    page.goto(live_server.url + "/recipes/eager-loading/?authors=15")
    page.get_by_label("How many queries will lazy loading send for 15 authors?").fill("2")
    page.get_by_role("button", name="Predict and run").first.click()
    page.wait_for_url("**/recipes/eager-loading/predict")
    expect(page.locator("#answer")).to_contain_text("Not this time")
    expect(page.locator("#truth")).to_have_text("16")
    expect(page.get_by_label("Authors", exact=True)).to_have_value("15")

    page.get_by_role("button", name="Try it with the form's variant").click()
    page.wait_for_url("**/recipes/eager-loading/challenge")
    expect(page.locator("#verdict")).to_contain_text("Not yet")  # lazy: 51 queries


LEARNING_PARTS = [".learn-panel", ".learn-result", ".next-step", "#track-progress", ".guidance", ".exports"]
"""What these pages add to a recipe page; the statement list and plan under them are scanned by
test_browser_access.py."""


def learning_violations(tab: Page) -> list[str]:
    parts = [[selector] for selector in LEARNING_PARTS if tab.locator(selector).count()]
    found = Axe().run(tab, context={"include": parts})
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in found.response["violations"]
        if v["impact"] in SERIOUS
    ]


def test_axe_finds_nothing_serious_on_the_learning_pages(scheme_tab, live_server):
    tab = scheme_tab
    base = live_server.url
    found: dict[str, list[str]] = {}
    tab.goto(base + "/recipes/eager-loading/?authors=10")
    tab.get_by_label("How many queries will lazy loading send for 10 authors?").fill("3")
    tab.get_by_role("button", name="Predict and run").first.click()
    tab.locator("#answer").wait_for()
    found["recipe with an answer"] = learning_violations(tab)
    tab.get_by_role("button", name="Try it with the form's variant").click()
    tab.locator("#verdict").wait_for()
    found["recipe with a verdict"] = learning_violations(tab)

    tab.goto(base + "/tracks/")
    found["tracks"] = axe_violations(tab)
    tab.goto(base + "/tracks/onboarding/1/")
    tab.locator(".question input").fill("1")
    tab.get_by_role("button", name="Predict and run").click()
    tab.locator("#answer").wait_for()
    found["step with an answer"] = learning_violations(tab)
    tab.goto(base + "/tracks/onboarding/")
    found["track"] = axe_violations(tab)
    tab.locator("#export-track").click()
    tab.locator("#export-markdown").wait_for()
    found["export"] = axe_violations(tab)
    assert not any(found.values()), "\n".join(f"{k}: {v}" for k, v in found.items() if v)
