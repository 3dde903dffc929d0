"""Signing in by a reverse proxy's user header: believed from the named proxies only, never from
anyone else, off unless configured; Django accounts keep working beside it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from playground.web.proxy_user import ProxyUserMiddleware
from tests.web import post

pytestmark = pytest.mark.django_db(transaction=True)

PROXY = "10.0.0.5"
ELSEWHERE = "10.0.0.6"
AS_ADA = {"HTTP_X_FORWARDED_USER": "ada", "HTTP_X_FORWARDED_EMAIL": "ada@example.com"}


@pytest.fixture
def proxy_mode(settings) -> None:
    settings.PLAYGROUND = {
        **settings.PLAYGROUND,
        "REQUIRE_LOGIN": True,
        "PROXY_USER_HEADER": "X-Forwarded-User",
        "PROXY_EMAIL_HEADER": "X-Forwarded-Email",
        "PROXY_ADDRESSES": [PROXY, "fd00:1::/64"],
    }


def users() -> list[str]:
    return list(get_user_model().objects.values_list("username", flat=True))


@pytest.mark.usefixtures("proxy_mode")
@pytest.mark.parametrize("peer", [PROXY, "fd00:1::7"])
def test_the_named_proxy_signs_people_in(peer):
    client = Client(REMOTE_ADDR=peer)
    response = client.get("/", **AS_ADA)
    assert response.status_code == 200
    assert "Signed in as ada" in response.content.decode()
    ada = get_user_model().objects.get(username="ada")
    assert ada.email == "ada@example.com" and not ada.is_staff
    assert client.get("/tracks/", **AS_ADA).status_code == 200  # the same session, no second account
    assert users() == ["ada"]


@pytest.mark.usefixtures("proxy_mode")
@pytest.mark.parametrize(
    "headers",
    [AS_ADA, {**AS_ADA, "HTTP_X_FORWARDED_FOR": PROXY}],
    ids=["plain", "claiming-to-be-forwarded-by-the-proxy"],
)
def test_the_header_from_any_other_address_signs_nobody_in(headers):
    response = Client(REMOTE_ADDR=ELSEWHERE).get("/", **headers)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert users() == []


def test_the_header_is_ignored_unless_the_mode_is_on(settings):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "REQUIRE_LOGIN": True}  # no header named
    assert Client(REMOTE_ADDR=PROXY).get("/", **AS_ADA).status_code == 302
    assert users() == []


@pytest.mark.usefixtures("proxy_mode")
def test_a_wildcard_address_trusts_nobody_and_is_warned_about(settings, caplog):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "PROXY_ADDRESSES": ["*"]}
    assert Client(REMOTE_ADDR=PROXY).get("/", **AS_ADA).status_code == 302
    assert users() == []
    ProxyUserMiddleware(lambda request: None)  # as each process makes it, on its first request
    assert "names no proxy" in caplog.text


@pytest.mark.usefixtures("proxy_mode")
def test_when_the_proxy_stops_vouching_the_session_is_signed_out():
    client = Client(REMOTE_ADDR=PROXY)
    assert client.get("/", **AS_ADA).status_code == 200
    assert client.get("/").status_code == 302  # from the proxy, without the header
    assert client.get("/", HTTP_X_FORWARDED_USER="").status_code == 302  # an empty one names nobody


@pytest.mark.usefixtures("proxy_mode")
def test_another_name_from_the_proxy_replaces_the_person():
    client = Client(REMOTE_ADDR=PROXY)
    client.get("/", **AS_ADA)
    page = client.get("/", HTTP_X_FORWARDED_USER="bob").content.decode()
    assert "Signed in as bob" in page and "ada" not in page  # no Sign out: the proxy signs in


@pytest.mark.usefixtures("proxy_mode")
def test_django_accounts_keep_working_beside_the_proxy():
    get_user_model().objects.create_user("carol", password="a long enough password")
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=ELSEWHERE)
    client.get("/accounts/login/")
    response = post(client, "/accounts/login/", {"username": "carol", "password": "a long enough password"})
    assert response.status_code == 302
    # A header sent on the direct path changes nothing: carol stays carol.
    page = client.get("/", HTTP_X_FORWARDED_USER="ada").content.decode()
    assert "Sign out carol" in page
    assert users() == ["carol"]
