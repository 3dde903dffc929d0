"""Each sandbox server's state: in /healthz's body (which fails only when `main` does) and on the
operator's status page with its sandboxes, an embedded server nobody used left unstarted."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from playground import embedded
from playground import sandbox as sandboxes
from playground.running.engine import CONNECT_TIMEOUT_SECONDS
from playground.sandbox import health
from tests.test_server_down import pg16_by_url  # noqa: F401  (the fixture)
from tests.web import api

pytestmark = pytest.mark.django_db(transaction=True)

RUN = "/api/recipes/offset-pagination/run"
BODY = {"variant": "offset", "params": {"rows": 1000}}


def listed(body: dict) -> dict[str, tuple[int, str]]:
    return {s["name"]: (s["version"], s["state"]) for s in body["sandbox_servers"]}


@pytest.fixture
def staff(client) -> Client:
    client.force_login(get_user_model().objects.create_superuser("olga", password="a long enough password"))
    return client


def start_16_again(pgdata: Path) -> None:
    embedded.start_sandbox_server(
        pgdata, sandbox_database=sandboxes.admin_url().database, secret=django_settings.SECRET_KEY, version=16
    )


def test_healthz_lists_each_server_with_its_version_and_state(drop_sandboxes):
    sandboxes.provision(version=16)  # the 16 server runs once a sandbox lives there
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["sandbox_database"] == "ok"
    assert listed(body) == {"main": (18, "up"), "pg16": (16, "up")}


def test_the_status_page_lists_the_servers_with_their_sandboxes(staff, drop_sandboxes):
    assert api(Client(), RUN, {**BODY, "pg": 16}).status_code == 200
    assert api(Client(), RUN, BODY).status_code == 200
    assert api(Client(), RUN, BODY).status_code == 200
    page = staff.get("/operator/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<table id="servers">' in html
    assert (
        '<tr id="server-main"><th scope="row">main</th><td>18</td><td>2</td><td class="state-up">up' in html
    )
    assert (
        '<tr id="server-pg16"><th scope="row">pg16</th><td>16</td><td>1</td><td class="state-up">up' in html
    )
    as_json = staff.get("/operator/", headers={"Accept": "application/json"}).json()
    assert as_json["servers"] == [
        {"name": "main", "version": 18, "state": "up", "sandboxes": 2},
        {"name": "pg16", "version": 16, "state": "up", "sandboxes": 1},
    ]


@pytest.mark.slow
def test_healthz_does_not_start_the_embedded_16_server(drop_sandboxes):
    pgdata = sandboxes.named("pg16").pgdata
    sandboxes.provision(version=16)
    embedded.stop_sandbox_server(pgdata)
    try:
        response = Client().get("/healthz")
        assert response.status_code == 200 and response.json()["ok"] is True
        assert listed(response.json())["pg16"] == (16, health.NOT_STARTED)
        assert not embedded.sandbox_server_running(pgdata)  # asking started nothing
    finally:
        start_16_again(pgdata)
    assert listed(Client().get("/healthz").json())["pg16"] == (16, "up")


@pytest.mark.slow
def test_a_16_server_down_is_reported_but_does_not_fail_the_probe(pg16_by_url, staff, drop_sandboxes):  # noqa: F811
    assert api(Client(), RUN, {**BODY, "pg": 16}).status_code == 200
    embedded.stop_sandbox_server(pg16_by_url)
    try:
        response = Client().get("/healthz")
        assert response.status_code == 200 and response.json()["ok"] is True
        assert listed(response.json()) == {"main": (18, "up"), "pg16": (16, "down")}
        page = staff.get("/operator/")
        assert page.status_code == 200
        html = page.content.decode()
        assert '<th scope="row">pg16</th><td>16</td><td>1</td><td class="state-down">down' in html
        assert "Live sandboxes" in html  # the rest of the page still reads `main`
    finally:
        start_16_again(pg16_by_url)
    assert listed(Client().get("/healthz").json())["pg16"] == (16, "up")


@pytest.fixture
def silent_server(settings):
    """A sandbox server listed at an address that accepts connections and never says a word, as a
    server behind a firewall that drops packets looks to libpq."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = sandboxes.admin_url().set(host="127.0.0.1", port=port, query={})
    settings.PLAYGROUND = {
        **settings.PLAYGROUND,
        "SANDBOX_SERVERS": [
            {"name": "quiet", "version": 16, "url": url.render_as_string(hide_password=False)}
        ],
    }
    yield "quiet"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_healthz_answers_in_seconds_when_a_server_never_answers(silent_server):
    started = time.monotonic()
    response = Client().get("/healthz")
    took = time.monotonic() - started
    assert response.status_code == 200  # main answers: the probe passes
    assert listed(response.json())[silent_server] == (16, "down")
    assert took < health.ANSWER_WAIT_SECONDS + 1.5, took


def test_a_connection_to_a_server_that_never_answers_gives_up(silent_server):
    started = time.monotonic()
    state = health.state_of(sandboxes.named(silent_server))
    assert state.state == health.DOWN
    assert time.monotonic() - started < CONNECT_TIMEOUT_SECONDS + 3
