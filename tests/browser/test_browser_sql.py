"""Edit a recipe's statement as SQL in Chromium, run it in place, and compare it with the recipe's run."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from playground.models import Run
from tests.browser.helpers import axe_violations
from tests.test_tracks_sql import KEYSET

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_edit_a_recipe_statement_run_it_and_compare(page, live_server):
    page.goto(live_server.url + "/recipes/keyset-pagination/?rows=1000&page=3")
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("#query-count").wait_for()
    page.locator("#edit-as-sql").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("SQL scratchpad")
    editor = page.get_by_label("SQL", exact=True)
    expect(editor).to_contain_text("LIMIT 20")
    expect(page.locator(".tables")).to_contain_text("documents")
    # change the query: fewer rows, by hand
    editor.fill(editor.input_value().replace("LIMIT 20", "LIMIT 5"))
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#statement-1 table.rows tbody tr")).to_have_count(5)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the results"
    expect(page.locator("#results table.plan")).to_be_visible()
    assert Run.objects.filter(recipe="sql").count() == 1

    page.locator("#compare-runs").click()
    expect(page.locator("body")).to_contain_text("keyset-pagination")
    expect(page.locator("body")).to_contain_text("sql · sql")


def test_a_refused_statement_says_why_in_place(page, live_server, console_errors):
    page.goto(live_server.url + "/sql/")
    page.get_by_label("SQL", exact=True).fill("SELECT 1; SET statement_timeout = 0")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#results .problem")).to_contain_text("Statement 2 refused: SET / RESET")
    console_errors.clear()  # the 400 answer is logged by the browser
    assert not Run.objects.exists()
    assert axe_violations(page) == []


def test_a_track_challenge_answered_with_sql(page, live_server, console_errors):
    page.goto(live_server.url + "/tracks/n-plus-one-and-pagination/7/")
    editor = page.get_by_label("SQL", exact=True)
    expect(editor).to_contain_text("OFFSET 9980 LIMIT 20")
    try_it = page.get_by_role("button", name="Try your SQL")
    try_it.click()  # the starting text: the right rows, read the slow way
    expect(page.locator("#verdict #outcome")).to_contain_text("Not yet")
    expect(page.locator("#verdict")).to_contain_text("same rows as the reference: yes")

    editor.fill(KEYSET)
    try_it.click()
    expect(page.locator("#verdict #outcome")).to_contain_text("Passed")
    expect(page.locator("#statement-1 table.rows tbody tr")).to_have_count(20)
    expect(page.locator("#next-step")).to_contain_text("back to the track")
    expect(page.locator(".track-progress").first).to_contain_text("1 of 7")
    assert axe_violations(page) == []  # typed SQL's number literals and the plan's badges included
    page.set_viewport_size({"width": 420, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
