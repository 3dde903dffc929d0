"""One sandbox server going down: its sessions get a 503 with Retry-After naming it, everyone
else's runs go on, the reaper passes over it, and its sessions work again once it is back."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from playground import embedded
from playground import sandbox as sandboxes
from playground.models import Sandbox
from tests.web import api

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RUN = "/api/recipes/offset-pagination/run"
BODY = {"variant": "offset", "params": {"rows": 1000}}


@pytest.fixture
def pg16_by_url(settings) -> Path:
    """The embedded 16 server as an operator's server is listed (by URL): stopped, it stays down
    until the test starts it again, instead of being started on the next use."""
    embedded_entry = next(s for s in settings.PLAYGROUND["SANDBOX_SERVERS"] if s["name"] == "pg16")
    url = sandboxes.admin_url(sandboxes.named("pg16")).render_as_string(hide_password=False)
    settings.PLAYGROUND = {
        **settings.PLAYGROUND,
        "SANDBOX_SERVERS": [{"name": "pg16", "version": 16, "url": url}],
    }
    return embedded_entry["pgdata"]


def test_a_stopped_16_server_refuses_its_sessions_only(pg16_by_url, drop_sandboxes):
    old, new = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    assert api(old, RUN, {**BODY, "pg": 16}).status_code == 200
    assert api(new, RUN, BODY).status_code == 200
    embedded.stop_sandbox_server(pg16_by_url)
    try:
        # Under load: 18 sessions keep running while the 16 ones are refused.
        statuses: list[int] = []

        def keep_running() -> None:
            mine = Client(enforce_csrf_checks=True)
            statuses.extend(api(mine, RUN, BODY).status_code for _ in range(3))

        workers = [threading.Thread(target=keep_running) for _ in range(3)]
        for worker in workers:
            worker.start()
        down = api(old, RUN, {**BODY, "pg": 16})
        fresh = api(Client(enforce_csrf_checks=True), RUN, {**BODY, "pg": 16})  # a new 16 session
        for worker in workers:
            worker.join(60)
        assert statuses == [200] * 9
        for refused in (down, fresh):
            assert refused.status_code == 503, refused.content
            assert int(refused["Retry-After"]) > 0
            assert "PostgreSQL 16, sandbox server pg16" in refused.json()["error"]
        assert api(new, RUN, BODY).status_code == 200
        assert not Sandbox.objects.filter(server="pg16").exclude(role=old.session["sandbox_pg16"]).exists()
        # The reaper drops the idle 18 sandboxes and leaves the unreachable one for later.
        Sandbox.objects.update(last_used_at=timezone.now() - timedelta(days=2))
        dropped = sandboxes.reap_once().dropped
        assert old.session["sandbox_pg16"] not in dropped and new.session["sandbox"] in dropped
        assert Sandbox.objects.filter(server="pg16").count() == 1
    finally:
        embedded.start_sandbox_server(
            pg16_by_url,
            sandbox_database=sandboxes.admin_url().database,
            secret=django_settings.SECRET_KEY,
            version=16,
        )
    back = api(old, RUN, {**BODY, "pg": 16})
    assert back.status_code == 200 and back.json()["server"] == "pg16"
