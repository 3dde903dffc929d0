"""The production page in Chromium: DEBUG off, the strict Content Security Policy enforced, and htmx
still running recipes, with no violation reported by the browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from tests.browser.helpers import TIMEOUT_MS, is_console_error

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def errors() -> list[str]:
    """Console errors and uncaught exceptions; must be empty when the test ends."""
    return []


@pytest.fixture
def page(browser, errors) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if is_console_error(msg) else None)
    yield page
    violations = page.evaluate("window.__csp")
    context.close()
    assert not violations, violations
    assert not errors, errors


def open_recipe(page: Page, url: str) -> None:
    with page.expect_response(url) as answer:
        page.goto(url)
    policy = answer.value.headers.get("content-security-policy", "")
    assert "script-src 'self' 'nonce-" in policy and "unsafe-inline" not in policy, policy


def test_runs_in_place_under_the_policy(page, live_server, settings):
    assert not settings.DEBUG
    open_recipe(page, live_server.url + "/recipes/keyset-pagination/?rows=1000&page=20")
    assert page.evaluate("htmx.config.allowEval") is False
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#query-count")).to_have_text("1")
    expect(page.locator("#results table.plan")).to_be_visible()
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapped"
    # The highlighted source is styled by the nonced inline stylesheet.
    colour = page.evaluate("getComputedStyle(document.querySelector('.hl .k')).color")
    assert colour not in ("rgb(0, 0, 0)", ""), colour
    # htmx added no stylesheet of its own; every <style> and <script> carries the nonce.
    assert page.evaluate("[...document.querySelectorAll('style, script')].every(e => e.nonce)")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset my sandbox").click()
    expect(page.locator("#flash")).to_contain_text("Sandbox reset")


def test_an_inline_style_without_the_nonce_is_reported(page, live_server, errors):
    """The recording works: what the policy blocks shows up, and is then cleared."""
    open_recipe(page, live_server.url + "/")
    page.evaluate(
        "() => { const s = document.createElement('style'); s.textContent = 'body { color: red }';"
        " document.head.append(s); }"
    )
    page.wait_for_function("window.__csp.length > 0")
    assert page.evaluate("window.__csp") == ["style-src-elem blocked inline"]
    assert any("Content Security Policy" in e for e in errors), errors
    page.evaluate("window.__csp = []")
    errors.clear()


def test_login_wall_in_the_browser(page, live_server, settings):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "REQUIRE_LOGIN": True}
    get_user_model().objects.create_user("grace", password="a long enough password")
    page.goto(live_server.url + "/recipes/offset-pagination/?rows=1000")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Offset pagination")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#query-count")).to_have_text("2")
    expect(page.get_by_role("button", name="Sign out grace")).to_be_visible()
