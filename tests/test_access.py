"""The health probe, the optional login wall and the Content Security Policy of every page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from playground import sandbox as sandboxes
from playground.models import Sandbox

pytestmark = pytest.mark.django_db(transaction=True)

RUN = {"variant": "keyset", "params": {"page": 2, "size": 5, "rows": 1000}}


@pytest.fixture(autouse=True)
def _drop_sandboxes(transactional_db) -> Iterator[None]:
    yield
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


@pytest.fixture
def client() -> Client:
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def login_on(settings) -> None:
    settings.PLAYGROUND = {**settings.PLAYGROUND, "REQUIRE_LOGIN": True}


@pytest.fixture
def user():
    return get_user_model().objects.create_user("ada", password="a long enough password")


def token(client: Client, path: str = "/api/recipes") -> str:
    if "csrftoken" not in client.cookies:
        client.get(path)
    return client.cookies["csrftoken"].value


def api_run(client: Client, csrf_from: str = "/api/recipes"):
    return client.post(
        "/api/recipes/keyset-pagination/run",
        data=json.dumps(RUN),
        content_type="application/json",
        headers={"X-CSRFToken": token(client, csrf_from)},
    )


# --- login off (the default) ----------------------------------------------------------------
def test_without_login_everything_is_open(client):
    assert client.get("/").status_code == 200
    assert client.get("/api/recipes").status_code == 200
    response = api_run(client)
    assert response.status_code == 200 and response.json()["ok"]
    assert "Sign out" not in client.get("/").content.decode()


# --- login on -------------------------------------------------------------------------------
@pytest.mark.usefixtures("login_on")
def test_browsers_are_sent_to_the_login_page(client):
    response = client.get("/recipes/keyset-pagination/?page=3")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/recipes/keyset-pagination/%3Fpage%3D3"
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert "Reset my sandbox" not in html


@pytest.mark.usefixtures("login_on")
def test_json_clients_get_401_and_nothing_runs(client):
    response = client.get("/api/recipes")
    assert response.status_code == 401
    assert response.json() == {
        "error": "authentication required: sign in first",
        "login_url": "/accounts/login/",
    }
    response = api_run(client, csrf_from="/accounts/login/")
    assert response.status_code == 401
    assert not Sandbox.objects.exists()


@pytest.mark.usefixtures("login_on")
def test_htmx_requests_are_told_to_go_to_the_login_page(client):
    response = client.post(
        "/recipes/keyset-pagination/run",
        data={"variant": "keyset", "rows": 1000},
        headers={
            "X-CSRFToken": token(client, "/accounts/login/"),
            "HX-Request": "true",
            "HX-Current-URL": "http://testserver/recipes/keyset-pagination/",
        },
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=%2Frecipes%2Fkeyset-pagination%2F"
    assert not Sandbox.objects.exists()


@pytest.mark.usefixtures("login_on")
def test_health_probe_stays_open(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["ok"]


@pytest.mark.usefixtures("login_on")
def test_signed_in_user_runs_recipes_then_signs_out(client, user):
    csrf = token(client, "/accounts/login/")
    response = client.post(
        "/accounts/login/",
        {"username": "ada", "password": "wrong", "next": "/"},
        headers={"X-CSRFToken": csrf},
    )
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()

    response = client.post(
        "/accounts/login/",
        {"username": "ada", "password": "a long enough password", "next": "/recipes/keyset-pagination/"},
        headers={"X-CSRFToken": csrf},
    )
    assert response.status_code == 302 and response["Location"] == "/recipes/keyset-pagination/"
    page = client.get("/")
    assert page.status_code == 200 and "Sign out ada" in page.content.decode()
    response = api_run(client)
    assert response.status_code == 200 and response.json()["ok"]
    assert Sandbox.objects.count() == 1

    response = client.post("/accounts/logout/", headers={"X-CSRFToken": client.cookies["csrftoken"].value})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


# --- Content Security Policy ----------------------------------------------------------------
def nonce_of(response) -> str:
    policy = response["Content-Security-Policy"]
    match = re.search(r"script-src 'self' 'nonce-([^']+)'", policy)
    assert match, policy
    expected = (
        f"default-src 'self'; script-src 'self' 'nonce-{match.group(1)}'; "
        f"style-src 'self' 'nonce-{match.group(1)}'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    assert policy == expected
    return match.group(1)


def assert_nothing_inline_without_nonce(html: str, nonce: str | None) -> None:
    for tag in re.findall(r"<(?:script|style)\b[^>]*>", html):
        assert nonce is not None and f'nonce="{nonce}"' in tag, tag
    assert not re.search(r"<[^>]+\sstyle=", html), "inline style attribute"
    assert not re.search(r"<[^>]+\s(?:on[a-z]+|hx-on[:\w-]*)=", html), "inline event handler"
    assert "javascript:" not in html


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_pages_carry_a_strict_policy_and_nonce_every_inline_tag(client, settings, debug):
    settings.DEBUG = debug
    for path in (
        "/",
        "/recipes/keyset-pagination/",
        "/recipes/offset-pagination/?page=0",
        "/accounts/login/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        nonce = nonce_of(response)
        assert_nothing_inline_without_nonce(html, nonce)
        assert html.count(f'nonce="{nonce}"') >= 3, path
        config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']+)'", html).group(1))
        assert config["allowEval"] is False and config["includeIndicatorStyles"] is False
        assert config["responseHandling"][0] == {"code": "204", "swap": False}


def test_results_partial_has_nothing_inline(client):
    response = client.post(
        "/recipes/keyset-pagination/run",
        data={"variant": "keyset", "rows": 1000, "page": 2},
        headers={"X-CSRFToken": token(client), "HX-Request": "true"},
    )
    assert response.status_code == 200
    assert 'id="query-count"' in response.content.decode()
    assert_nothing_inline_without_nonce(response.content.decode(), None)
