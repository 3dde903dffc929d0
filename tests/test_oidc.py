"""Signing in with an OpenID Connect provider: who may, and the whole round trip against a real
provider (django-oauth-toolkit, started by the tests in a subprocess)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from playground.web import oidc
from tests.oidc_provider.running import CLIENT_ID, CLIENT_SECRET, Provider, running

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rules(settings):
    def set_rules(domains=(), groups=()):
        settings.PLAYGROUND = {
            **settings.PLAYGROUND,
            "OIDC_ALLOWED_EMAIL_DOMAINS": list(domains),
            "OIDC_ALLOWED_GROUPS": list(groups),
        }

    return set_rules


@pytest.mark.parametrize(
    ("claims", "refused_because"),
    [
        ({"email": "ada@example.com"}, None),
        ({"email": "ada@EXAMPLE.com", "email_verified": True}, None),
        ({"email": "bob@contractor.example.net", "groups": ["playground-users"]}, None),
        ({"email": "eve@elsewhere.example.org", "groups": ["sales"]}, "may not sign in here"),
        ({"email": "eve@example.com.evil.org"}, "may not sign in here"),
        ({"email": "mallory@example.com", "email_verified": False}, "has not verified"),
        ({"preferred_username": "nobody"}, "did not give an email"),
    ],
)
def test_who_may_sign_in(rules, claims, refused_because):
    rules(domains=["example.com"], groups=["playground-users"])
    reason = oidc.refusal_reason(claims)
    assert (reason is None) if refused_because is None else (refused_because in reason)


def test_without_rules_every_verified_account_of_the_provider_may(rules):
    rules()
    assert oidc.refusal_reason({"email": "anyone@anywhere.example"}) is None


def test_the_sign_in_views_are_not_found_until_configured():
    for path in ("/oidc/authenticate/", "/oidc/callback/?code=x&state=y"):
        assert Client().get(path).status_code == 404
    assert "Sign in with" not in Client().get("/accounts/login/").content.decode()


def test_a_provider_that_does_not_answer_is_a_503_not_a_500(settings):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # discard port: nothing answers
    settings.OIDC_RP_CLIENT_ID = "x"
    oidc._discovered.clear()
    response = Client().get("/oidc/authenticate/")
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert b"identity provider is not answering" in response.content


# --- against a real provider -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def provider(tmp_path_factory) -> Iterator[Provider]:
    with running(tmp_path_factory.mktemp("provider")) as started:
        yield started


@pytest.fixture
def company_sign_in(settings, provider, rules) -> Provider:
    """The playground set up as docs/deploy.md says, against the test provider; login required."""
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "playground.web.oidc.CompanyBackend",
    ]
    settings.PLAYGROUND = {**settings.PLAYGROUND, "REQUIRE_LOGIN": True}
    rules(domains=["example.com"], groups=["playground-users"])
    oidc._discovered.clear()
    return provider


def sign_in(provider: Provider, username: str, next_page: str = "/tracks/") -> tuple[Client, object]:
    """The whole round trip: the playground sends the browser to the provider, the person signs in
    there, the provider sends them back with a code the playground exchanges. Returns the
    playground's client and its answer to the callback."""
    app = Client()
    start = app.get(f"/oidc/authenticate/?next={next_page}")
    assert start.status_code == 302 and start["Location"].startswith(provider.issuer + "/authorize/")
    back = urlsplit(provider.sign_in(start["Location"], username))
    assert (back.netloc, back.path) == ("testserver", "/oidc/callback/")
    return app, app.get(f"{back.path}?{back.query}")


@pytest.mark.slow
def test_signing_in_with_the_provider_makes_the_account_and_signs_in(company_sign_in):
    login_page = Client().get("/accounts/login/?next=/tracks/").content.decode()
    assert (
        "Sign in with your company account" in login_page
        and "/oidc/authenticate/?next=/tracks/" in login_page
    )
    app, answer = sign_in(company_sign_in, "ada")
    assert answer.status_code == 302 and answer["Location"] == "/tracks/"
    page = app.get("/tracks/")
    assert page.status_code == 200 and "Sign out ada@example.com" in page.content.decode()
    ada = get_user_model().objects.get()
    assert (ada.username, ada.email, ada.is_staff) == ("ada@example.com", "ada@example.com", False)
    again, _ = sign_in(company_sign_in, "ada")  # another browser: the same account
    assert again.get("/tracks/").status_code == 200 and get_user_model().objects.count() == 1


@pytest.mark.slow
def test_a_group_the_company_allows_is_enough(company_sign_in):
    app, answer = sign_in(company_sign_in, "bob")
    assert answer.status_code == 302
    assert app.get("/tracks/").status_code == 200


@pytest.mark.slow
def test_a_refused_domain_gets_a_403_saying_why_and_no_account(company_sign_in):
    app, answer = sign_in(company_sign_in, "eve")
    assert answer.status_code == 403
    assert "eve@elsewhere.example.org may not sign in here" in answer.content.decode()
    assert not get_user_model().objects.exists()
    assert app.get("/tracks/").status_code == 302  # still sent to sign in


@pytest.mark.slow
def test_a_forged_callback_signs_nobody_in(company_sign_in):
    app = Client()
    app.get("/oidc/authenticate/")
    answer = app.get("/oidc/callback/?code=made-up&state=made-up")
    assert answer.status_code in (400, 403)
    assert not get_user_model().objects.exists()


def test_the_header_offers_sign_in_with_a_provider_and_sign_out_to_whoever_is_signed_in(settings):
    from tests.test_every_page import configure_oidc

    plain = Client().get("/").content.decode()
    assert 'id="sign-in"' not in plain  # no provider: nothing to offer a visitor
    configure_oidc(settings)
    visitor = Client().get("/recipes/keyset-pagination/?page=3").content.decode()
    assert 'id="sign-in" href="/accounts/login/?next=/recipes/keyset-pagination/%3Fpage%3D3"' in visitor
    assert 'id="sign-in"' not in Client().get("/accounts/login/").content.decode()

    person = Client()
    person.force_login(get_user_model().objects.create_user("ada", password="a long password"))
    page = person.get("/").content.decode()  # sign-in is optional here, and ada may sign out
    assert "Sign out ada" in page and 'id="sign-in"' not in page


def test_the_sign_in_page_says_signing_in_is_optional_where_it_is(settings):
    from tests.test_every_page import configure_oidc

    configure_oidc(settings)
    optional = Client().get("/accounts/login/").content.decode()
    assert "open to signed-in people only" not in optional and "in every browser" in optional
    settings.PLAYGROUND = {**settings.PLAYGROUND, "REQUIRE_LOGIN": True}
    assert "open to signed-in people only" in Client().get("/accounts/login/").content.decode()
