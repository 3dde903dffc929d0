"""Fixtures of the browser tests: Debian's Chromium driven by Playwright against a live server.

They live here rather than in tests/conftest.py so that the autouse ones (Django's ORM allowed
beside Playwright's event loop, every sandbox dropped after each test) apply to these tests only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.helpers import WIDTHS, open_page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module", autouse=True)
def _allow_orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an event loop running in this thread, which makes Django refuse
    ORM calls from fixtures; none of them actually run inside that loop."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(_allow_orm_beside_playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _drop_sandboxes(drop_sandboxes) -> None:
    """Every browser test drops the sandboxes its pages' sessions were given (tests/conftest.py)."""


@pytest.fixture
def console_errors() -> list[str]:
    """Errors the page logged; a test expecting one (a 400 answer) removes it from the list."""
    return []


@pytest.fixture
def page(browser, console_errors) -> Iterator[Page]:
    yield from open_page(browser, console_errors)


@pytest.fixture
def page_without_js(browser, console_errors) -> Iterator[Page]:
    yield from open_page(browser, console_errors, javascript=False)


@pytest.fixture(params=list(WIDTHS), ids=list(WIDTHS))
def sized_page(request, browser, console_errors) -> Iterator[Page]:
    """A page at each width of `WIDTHS`: the test runs once wide, once narrow."""
    for p in open_page(browser, console_errors):
        width, height = WIDTHS[request.param]
        p.set_viewport_size({"width": width, "height": height})
        yield p


@pytest.fixture(params=["light", "dark"])
def scheme_tab(browser, request) -> Iterator[Page]:
    """A wide page in the light, then the dark colour scheme: a test asking for it runs in both."""
    context = browser.new_context(color_scheme=request.param, viewport={"width": 1400, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()
