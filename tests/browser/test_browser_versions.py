"""Pick the PostgreSQL version and compare versions in Chromium: the same variant on 16 and 18,
in place, the figures in one table and the two plans side by side; wide and narrow."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from playground.models import Run
from tests.browser.helpers import axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FEW_OWNERS = "/recipes/indexes/?index=owner-created&query=one-instant&rows=20000&owners=50"


def test_compare_versions_shows_both_plans_in_place(page, live_server, console_errors):
    page.goto(live_server.url + FEW_OWNERS)
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Compare versions").click()
    versions = page.locator("#versions")
    expect(versions.locator("#comparison tbody tr")).to_have_count(2, timeout=30_000)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the results"
    expect(versions.locator("#comparison tbody tr").first).to_contain_text("PostgreSQL 16.")
    expect(versions.locator("#comparison tbody tr").last).to_contain_text("PostgreSQL 18.")
    expect(versions.locator("table.plan")).to_have_count(2)
    expect(versions.locator(".diff section").last).to_contain_text("ix_documents_owner_created")
    expect(page.locator("#version-changes")).to_contain_text("Plan nodes gone: Seq Scan")
    assert Run.objects.count() == 2
    assert axe_violations(page) == []
    page.screenshot(path="/tmp/pg16-versions-1400.png", full_page=True)
    page.set_viewport_size({"width": 420, "height": 900})
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    page.screenshot(path="/tmp/pg16-versions-420.png", full_page=True)
    assert overflow <= 0, f"{overflow} px wider than the window at 420 px"

    page.locator("a", has_text="Open the two runs in the run diff").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Run A against run B")


def test_a_run_on_16_says_so_and_uuid7_is_refused_there(page, live_server, console_errors):
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(live_server.url + "/recipes/uuid-keys/?rows=1000")
    page.get_by_label("PostgreSQL 16", exact=True).check()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#ran-on")).to_contain_text("Ran on PostgreSQL 16.")
    page.locator("input[name=variant][value=uuid7]").check()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#results .problem")).to_contain_text("needs PostgreSQL 18")
    console_errors.clear()  # the 400 answer is logged by the browser
    page.get_by_label("PostgreSQL 18", exact=True).check()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#ran-on")).to_contain_text("Ran on PostgreSQL 18.")
    page.screenshot(path="/tmp/pg16-run-1400.png", full_page=True)


def test_a_prediction_on_16_runs_there_and_its_link_reopens_on_16(page, live_server, console_errors):
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(live_server.url + "/recipes/eager-loading/?authors=12")
    page.evaluate("window.__marker = 1")
    page.get_by_label("PostgreSQL 16", exact=True).check()
    page.locator("#guess-lazy-queries").fill("13")
    page.locator("button.predict[value=lazy-queries]").click()
    expect(page.locator("#ran-on")).to_contain_text("Ran on PostgreSQL 16.")
    expect(page.locator(".learn-result")).to_contain_text("Right")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the results"
    expect(page.get_by_label("PostgreSQL 16", exact=True)).to_be_checked()
    link = page.locator("#share-link").get_attribute("href")
    assert "pg=16" in link and "authors=12" in link
    other = page.context.browser.new_context()
    try:
        shared_page = other.new_page()
        shared_page.goto(live_server.url + link)
        expect(shared_page.get_by_label("PostgreSQL 16", exact=True)).to_be_checked()
    finally:
        other.close()
    page.goto(live_server.url + "/history")
    page.get_by_role("link", name="run again").click()
    expect(page.get_by_label("PostgreSQL 16", exact=True)).to_be_checked()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
