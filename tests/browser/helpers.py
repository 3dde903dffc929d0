"""What several browser tests use besides fixtures: opening a page that records its errors, and
measuring what a person sees (sideways scrolling, colours, axe-core's serious findings)."""

from __future__ import annotations

from collections.abc import Iterator

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, ConsoleMessage, Page

TIMEOUT_MS = 20_000
WIDTHS = {"wide": (1400, 900), "narrow": (420, 900)}
SERIOUS = ("serious", "critical")

SHOWN_COLOURS = """(el) => {
    let under = el;
    const clear = (node) => getComputedStyle(node).backgroundColor === "rgba(0, 0, 0, 0)";
    while (under && clear(under)) under = under.parentElement;
    return [getComputedStyle(el).color, under ? getComputedStyle(under).backgroundColor : "white"];
}"""
"""An element's text colour and the first opaque background under it."""


def is_console_error(message: ConsoleMessage) -> bool:
    """Console errors, except for /favicon.ico, which the browser may ask for on its own."""
    return message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico")


def open_page(browser: Browser, errors: list[str], *, javascript: bool = True) -> Iterator[Page]:
    """A page in a context of its own (own cookies, so own session); once closed, `errors` must be
    empty: a test that expects one removes it."""
    context = browser.new_context(java_script_enabled=javascript)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if is_console_error(msg) else None)
    yield page
    context.close()
    assert not errors, errors


def sideways(tab: Page) -> int:
    """How many pixels the page scrolls sideways (0 or less: none)."""
    return tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def axe_violations(tab: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each."""
    found = Axe().run(tab).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in SERIOUS
    ]
