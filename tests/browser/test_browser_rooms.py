"""A workshop room in Chromium: a host and three participants, each in their own browser context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import SHOWN_COLOURS, open_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAMES = ("Ada", "Grace", "<i>Edsger</i>")


@pytest.fixture
def participants(browser, console_errors) -> Iterator[list[Page]]:
    """Three participants, each with their own cookies (so their own session and sandbox)."""
    pages = [open_page(browser, console_errors) for _ in NAMES]
    yield [next(p) for p in pages]
    for p in pages:
        next(p, None)


def test_a_room_with_a_host_and_three_participants(page, participants, live_server):
    host = page
    host.goto(live_server.url + "/rooms/new")
    host.get_by_label("Room name").fill("Tuesday onboarding")
    host.get_by_label("Track").select_option("onboarding")
    host.get_by_role("button", name="Make the room").click()
    expect(host.get_by_role("heading", level=1)).to_have_text("Tuesday onboarding")
    join_url = host.locator("#join-url").inner_text()
    code = host.locator("#join-code").inner_text()
    for button in ("#prepare", "#reset-all", "#close-room"):
        ink, paper = host.locator(button).evaluate(SHOWN_COLOURS)
        assert ink != paper, f"{button}'s text is the colour of what it sits on"

    for person, name in zip(participants, NAMES, strict=True):
        person.goto(join_url)
        expect(person.get_by_label("Room code")).to_have_value(code)
        person.get_by_label("Your name").fill(name)
        person.get_by_role("button", name="Join").click()
        expect(person.locator("#member-name")).to_have_text(name)
    expect(host.locator("#board .member-name")).to_have_text(list(NAMES))  # the board polled itself

    host.get_by_label("Send everyone to").select_option("1")
    host.get_by_role("button", name="Push the step").click()
    expect(host.locator("#current-step")).to_contain_text("Step 1")
    for person, guess in zip(participants, ("0", "5", "0"), strict=True):
        expect(person).to_have_url(live_server.url + "/tracks/onboarding/1/")  # moved by its poll
        person.locator(".question input").fill(guess)
        person.get_by_role("button", name="Predict and run").click()
        expect(person.locator("#truth")).to_have_text("0")

    rows = host.locator("#board tr.member")
    expect(rows).to_have_count(3)
    expect(host.locator("#board .run-state")).to_have_text(["timestamp-mixin / raw-update: ok"] * 3)
    expect(host.locator("#board .run-queries")).to_have_text(["3"] * 3)
    expect(host.locator("#spread")).to_contain_text("2 of 3 right")
    expect(host.locator("#spread li")).to_have_text(["Ada: 0 ✓", "Grace: 5 ✗", "<i>Edsger</i>: 0 ✓"])

    # The next push reaches them on the step page they are on, through the room bar.
    host.get_by_label("Send everyone to").select_option("3")
    host.get_by_role("button", name="Push the step").click()
    for person in participants:
        expect(person).to_have_url(live_server.url + "/tracks/onboarding/3/")
    expect(host.locator("#board tr.member")).to_contain_text(["Step 3"] * 3)


def test_projector_mode_puts_run_first_and_the_hosts_run_big(page, live_server):
    page.goto(live_server.url + "/rooms/new")
    page.get_by_label("Room name").fill("On the wall")
    page.get_by_label("Track").select_option("onboarding")
    page.get_by_role("button", name="Make the room").click()
    page.get_by_role("button", name="Push the step").click()
    expect(page.locator("#current-step")).to_contain_text("Step 1")
    page.locator("#projector-link").click()
    host_url = page.url
    expect(page.locator("#host-run")).to_contain_text("your run shows here")
    page.locator("#step-on-projector").click()
    expect(page).to_have_url(live_server.url + "/tracks/onboarding/1/?projector=1")
    page.goto(live_server.url + "/recipes/keyset-pagination/?projector=1")
    for width in (1400, 420):
        page.set_viewport_size({"width": width, "height": 900})
        run, fields = page.locator("button.run"), page.locator("#run-form fieldset").first
        assert run.bounding_box()["y"] < fields.bounding_box()["y"]  # Run above the parameters
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.locator("button.run").click()
    expect(page.locator("#query-count")).to_have_text("1")
    page.goto(host_url)
    expect(page.locator("#host-queries")).to_have_text("1")  # the host's own run, big
    assert page.locator("#host-queries").evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= 48


def test_a_room_made_for_16_runs_its_participants_there(page, participants, live_server):
    host, person = page, participants[0]
    host.goto(live_server.url + "/rooms/new")
    for width in (420, 1400):
        host.set_viewport_size({"width": width, "height": 900})
        assert host.evaluate("document.documentElement.scrollWidth") <= width
    expect(host.get_by_label("PostgreSQL 18")).to_be_checked()
    host.get_by_label("Room name").fill("Still on 16")
    host.get_by_label("Track").select_option("onboarding")
    host.get_by_label("PostgreSQL 16").check()
    host.get_by_role("button", name="Make the room").click()
    expect(host.locator("#room-version")).to_have_text("PostgreSQL 16")
    host.get_by_role("button", name="Push the step").click()
    person.goto(host.locator("#join-url").inner_text())
    person.get_by_label("Your name").fill("Ada")
    person.get_by_role("button", name="Join").click()
    expect(person).to_have_url(live_server.url + "/tracks/onboarding/1/")
    person.locator(".question input").fill("0")
    person.get_by_role("button", name="Predict and run").click()
    expect(person.locator("#ran-on")).to_contain_text("Ran on PostgreSQL 16.")
    expect(host.locator("#board .run-state")).to_have_text(["timestamp-mixin / raw-update: ok"])
