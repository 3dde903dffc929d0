"""The operator's view in a browser: staff sign in on the admin's page, read the status page at
1400 and 420 px without sideways scrolling or a blocked script or style, and reap from it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from playground.models import OperatorAction, Sandbox
from tests.browser.helpers import sideways

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a long enough password"


def test_staff_sign_in_read_the_status_and_reap_now(sized_page, live_server, make_sandbox):
    get_user_model().objects.create_superuser("olga", password=PASSWORD)
    idle = make_sandbox()
    Sandbox.objects.filter(pk=idle.pk).update(last_used_at=timezone.now() - timedelta(days=2))
    sized_page.goto(f"{live_server.url}/operator/")
    expect(sized_page).to_have_url(f"{live_server.url}/admin/login/?next=/operator/")
    sized_page.get_by_label("Username").fill("olga")
    sized_page.get_by_label("Password").fill(PASSWORD)
    sized_page.get_by_role("button", name="Log in").click()
    expect(sized_page.locator("#figure-sandboxes")).to_contain_text("1 of 200")
    expect(sized_page.locator("#server-main td")).to_have_text(["18", "1", "up"])
    expect(sized_page.locator("#server-pg16 td").first).to_have_text("16")
    assert sideways(sized_page) <= 0
    sized_page.get_by_role("button", name="Reap now").click()
    expect(sized_page.locator(".messagelist")).to_contain_text("1 idle sandbox(es) dropped")
    expect(sized_page.locator("#figure-sandboxes")).to_contain_text("0 of 200")
    assert OperatorAction.objects.get().detail["dropped"] == [idle.role]
    for path in ("/admin/", "/admin/playground/sandbox/", "/admin/playground/operatoraction/"):
        sized_page.goto(live_server.url + path)
        expect(sized_page.locator("#content")).to_be_visible()
    expect(sized_page.locator("#result_list")).to_contain_text("reap now")
