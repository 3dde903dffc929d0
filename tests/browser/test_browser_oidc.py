"""The whole sign-in round trip in a browser: the playground's sign-in page, the provider's, and
back, against a real OpenID Connect provider; and a refused domain told why."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from tests.oidc_provider.running import PASSWORD
from tests.test_oidc import company_sign_in, provider, rules  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def sign_in_as(tab: Page, base: str, username: str) -> None:
    tab.goto(f"{base}/tracks/")
    expect(tab).to_have_url(f"{base}/accounts/login/?next=/tracks/")
    tab.get_by_role("link", name="Sign in with your company account").click()
    expect(tab.get_by_role("heading", name="Test identity provider")).to_be_visible()
    tab.get_by_label("Username").fill(username)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in to the provider").click()


def test_a_person_signs_in_with_the_company_provider_and_lands_where_they_were_going(
    page,
    live_server,
    company_sign_in,  # noqa: F811
):
    sign_in_as(page, live_server.url, "ada")
    expect(page).to_have_url(f"{live_server.url}/tracks/")
    expect(page.get_by_role("button", name="Sign out ada@example.com")).to_be_visible()
    page.get_by_role("button", name="Sign out ada@example.com").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")


def test_someone_of_a_refused_domain_is_told_why(page, live_server, company_sign_in, console_errors):  # noqa: F811
    sign_in_as(page, live_server.url, "eve")
    expect(page.locator("#oidc-refusal")).to_contain_text("eve@elsewhere.example.org may not sign in here")
    assert not get_user_model().objects.exists()
    console_errors.remove("Failed to load resource: the server responded with a status of 403 (Forbidden)")
