"""Every URL while the app database refuses connections: a 503 with Retry-After, never a 500.

The app's connection is pointed at a local port where nothing listens, so every query a view, a
middleware or a template makes fails exactly as it does while Postgres is down or restarting.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client
from django.urls import URLPattern, get_resolver

from tests.test_every_page import configure_oidc

pytestmark = pytest.mark.django_db(transaction=True)

RENDERINGS = {
    "page": {},
    "htmx": {"HTTP_HX_REQUEST": "true"},
    "json": {"HTTP_ACCEPT": "application/json"},
}
SWEEP = {"variant": "keyset", "sweep_param": "page", "sweep_from": "1", "sweep_to": "9", "sweep_points": "2"}
REQUESTS = [
    ("shelf", "get", "/", {}),
    ("recipe", "get", "/recipes/keyset-pagination/?page=4", {}),
    ("recipe-run", "post", "/recipes/keyset-pagination/run", {"variant": "keyset"}),
    ("recipe-compare", "post", "/recipes/keyset-pagination/compare", {"variant": "keyset"}),
    ("recipe-sweep", "post", "/recipes/keyset-pagination/sweep", SWEEP),
    ("recipe-versions", "post", "/recipes/keyset-pagination/versions", {"variant": "keyset"}),
    ("recipe-predict", "post", "/recipes/eager-loading/predict", {"question": "lazy-queries", "guess": "5"}),
    ("recipe-challenge", "post", "/recipes/eager-loading/challenge", {"challenge": "two-queries"}),
    ("tracks", "get", "/tracks/", {}),
    ("track", "get", "/tracks/onboarding/", {}),
    ("track-step", "get", "/tracks/onboarding/1/", {}),
    ("track-step-run", "post", "/tracks/onboarding/1/run", {}),
    ("track-export", "get", "/tracks/onboarding/export", {}),
    ("room-new", "get", "/rooms/new", {}),
    ("room-new", "post", "/rooms/new", {"name": "a room", "track": "onboarding"}),
    ("room-host", "get", "/rooms/host/" + "t" * 43 + "/", {}),
    ("room-push", "post", "/rooms/host/" + "t" * 43 + "/push", {"number": "2"}),
    ("room-prepare", "post", "/rooms/host/" + "t" * 43 + "/prepare", {"count": "2"}),
    ("room-reset", "post", "/rooms/host/" + "t" * 43 + "/reset", {}),
    ("room-close", "post", "/rooms/host/" + "t" * 43 + "/close", {}),
    ("room-join", "get", "/rooms/join?code=ABCDEFGH", {}),
    ("room-join", "post", "/rooms/join", {"code": "ABCDEFGH", "name": "Ada"}),
    ("room", "get", "/rooms/ABCDEFGH/", {}),
    ("room-go", "get", "/rooms/ABCDEFGH/go", {}),
    ("sql", "get", "/sql/", {}),
    ("sql-run", "post", "/sql/run", {"sql": "SELECT 1"}),
    ("history", "get", "/history", {}),
    ("run", "get", "/runs/1/", {}),
    ("run-diff", "get", "/runs/diff?a=1&b=2", {}),
    ("run-export", "get", "/runs/1/export", {}),
    ("run-plan", "get", "/runs/1/plan.json", {}),
    ("runs-export", "get", "/runs/export?ids=1,2", {}),
    ("run-snapshot", "post", "/runs/1/snapshot", {}),
    ("snapshot", "get", "/snapshots/" + "s" * 43 + "/", {}),
    ("compare-snapshot", "post", "/runs/snapshot", {"ids": "1,2"}),
    (
        "sweep-snapshot",
        "post",
        "/recipes/keyset-pagination/sweep/snapshot",
        {"sweep_id": "5f0c8e2e-3f5a-4c55-9a43-6f1d6b8f9a10", "sweep_param": "page", "sweep_y": "rows_read"},
    ),
    ("api-recipes", "get", "/api/recipes", {}),
    ("api-run", "post", "/api/recipes/keyset-pagination/run", {}),
    ("api-predict", "post", "/api/recipes/eager-loading/predict", {}),
    ("api-challenge", "post", "/api/recipes/eager-loading/challenge", {}),
    ("api-tracks", "get", "/api/tracks", {}),
    ("api-track-step", "post", "/api/tracks/onboarding/1/run", {}),
    ("sandbox-reset", "post", "/sandbox/reset", {}),
    ("healthz", "get", "/healthz", {}),
    ("login", "get", "/accounts/login/", {}),
    ("login", "post", "/accounts/login/", {"username": "ada", "password": "secret"}),
    ("logout", "post", "/accounts/logout/", {}),
    ("oidc_authentication_init", "get", "/oidc/authenticate/", {}),
    ("oidc_authentication_callback", "get", "/oidc/callback/?code=c&state=s", {}),
    ("operator-status", "get", "/operator/", {}),
    ("operator-reap", "post", "/operator/reap", {}),
]
"""(url name, method, path, data): every URL pattern, the login form posted too."""
READS_THE_APP_DATABASE = {
    *("recipe-run", "recipe-compare", "recipe-versions", "recipe-sweep", "history", "run", "run-diff"),
    *(
        "run-snapshot",
        "snapshot",
        "compare-snapshot",
        "sweep-snapshot",
        "room-host",
        "room-push",
        "room-prepare",
        "room-reset",
        "room-close",
        "room",
        "room-go",
    ),
    "sql-run",
    "operator-status",
    "operator-reap",
    "oidc_authentication_init",
    "oidc_authentication_callback",
}
"""Views that cannot answer without the app database, whoever asks."""


def closed_port() -> int:
    """A local TCP port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_database_down() -> Iterator[None]:
    """The app database refuses connections until the test ends."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_every_url_pattern_is_in_the_list():
    names = {p.name for p in get_resolver().url_patterns if isinstance(p, URLPattern) and p.name}
    assert names <= {name for name, *_ in REQUESTS}


@pytest.mark.parametrize("login", [False, True], ids=["open", "login-required"])
@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_every_url_answers_503_with_retry_after_never_500(settings, app_database_down, rendering, login):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "REQUIRE_LOGIN": login}
    configure_oidc(settings)
    failures = []
    for name, method, path, data in REQUESTS:
        client = Client(raise_request_exception=False)
        client.cookies["sessionid"] = "s" * 32  # a returning visitor: the session must be read
        response = getattr(client, method)(path, data, **RENDERINGS[rendering])
        status = response.status_code
        if status >= 500 and (status != 503 or int(response.get("Retry-After", 0)) <= 0):
            failures.append(f"{method} {path}: {status} {response.content[:150]!r}")
        elif name in READS_THE_APP_DATABASE and status < 300 and not (login and rendering == "htmx"):
            # htmx behind a login wall is told to go to the login page (200 + HX-Redirect) first
            failures.append(f"{method} {path}: {status} although it needs the app database")
        elif status == 503 and (rendering == "json" or path.startswith("/api/")) and name != "healthz":
            if not response.json()["error"].startswith("The database is not answering right now"):
                failures.append(f"{method} {path}: {response.json()}")
        elif status == 503 and name != "healthz" and b"The database is not answering" not in response.content:
            failures.append(f"{method} {path}: a 503 without the message {response.content[:150]!r}")
        if response.cookies.get("sessionid") and not response.cookies["sessionid"].value:
            failures.append(f"{method} {path}: the session cookie was deleted")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", ["/history", "/runs/1/", "/runs/diff?a=1&b=2"])
def test_history_a_run_and_a_diff_say_why_as_json_and_as_a_page(app_database_down, path):
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "s" * 32
    as_json = client.get(path, HTTP_ACCEPT="application/json")
    assert as_json.status_code == 503 and int(as_json["Retry-After"]) > 0
    assert as_json.json()["error"].startswith("The database is not answering right now")
    page = client.get(path)
    assert page.status_code == 503 and int(page["Retry-After"]) > 0
    assert b"</html>" in page.content and b"The database is not answering right now" in page.content
