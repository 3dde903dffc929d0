"""Connections on a shared server: the app's own roles, few idle connections after a burst under
runserver (`make run`) and gunicorn (the image), reaping with nothing scheduled under both, and a
health probe that answers while sandboxes hold every connection they may.

The served tests start the site in a subprocess on a fresh embedded server of their own, exactly
as `make run` (migrate, then runserver) or the image (bin/entrypoint) does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.test import Client

from playground import embedded
from playground import sandbox as sandboxes
from tests.conftest import TEST_ROLE_PREFIX, connect_kwargs
from tests.connection_burst import Browser, measure, of_role, socket_dir
from tests.probes import wait_for
from tests.restart_check import stop_embedded
from tests.test_deploy import HOST, free_port, production_env, static_root  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parent.parent
# The served sites use a server of their own; the test databases are for the in-process test.
pytestmark = pytest.mark.django_db(transaction=True)
HANDFUL = 5
"""Idle app-database connections a burst may leave (gunicorn's default 2 workers x 2 threads: 4)."""


@pytest.fixture(scope="module")
def pgdata() -> Iterator[Path]:
    """A data folder for a fresh embedded server, shared by this module's servers (one at a time)."""
    parent = Path(tempfile.mkdtemp(prefix="playground-conn-"))
    parent.chmod(0o755)  # run as root, the server's own user must reach it
    yield parent / "pgdata"
    shutil.rmtree(parent, ignore_errors=True)


class Served:
    """The site in a subprocess (its own process group), as `make run` or the image starts it."""

    def __init__(self, kind: str, pgdata: Path, static: Path, **extra: str):
        self.kind, self.port = kind, free_port()
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (lives as long as the server)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PLAYGROUND_"))}
        env.pop("DATABASE_URL", None)
        env.pop("SANDBOX_DATABASE_URL", None)
        if kind == "gunicorn":
            env = production_env(PORT=str(self.port), STATIC_ROOT=str(static))
            command = [str(ROOT / "bin" / "entrypoint")]
        else:  # make run: migrate, then runserver (threaded, autoreloading)
            command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}"]
        env.update(PLAYGROUND_PGDATA=str(pgdata), PLAYGROUND_ROLE_PREFIX=TEST_ROLE_PREFIX, **extra)
        if kind == "runserver":
            done = subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True
            )
            assert done.returncode == 0, done.stderr.decode()[-3000:]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A shell without job control starts background commands with ^C ignored, and Python
            # keeps it ignored: give the server the terminal's default back, so that ^C stops it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        gunicorn = kind == "gunicorn"
        self.browser = Browser(self.port, host=HOST if gunicorn else "127.0.0.1", https=gunicorn)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self) -> Served:
        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.kind} exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                return self.browser.request("GET", "/healthz")[0].status == 200
            except OSError:
                return False

        wait_for(ready, timeout=90, interval=0.3)
        return self

    def stop(self) -> None:
        # runserver stops cleanly on ^C (its autoreloader's child too), gunicorn on SIGTERM; the
        # last process holding the embedded server stops it on the way out.
        os.killpg(self.proc.pid, signal.SIGTERM if self.kind == "gunicorn" else signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def serve(pgdata, static_root) -> Iterator:  # noqa: F811
    started: list[Served] = []

    def start(kind: str, **extra: str) -> Served:
        started.append(Served(kind, pgdata, static_root, **extra).wait_ready())
        return started[-1]

    yield start
    for site in started:
        site.stop()
    # Normally the last process stops the server. runserver's autoreloader kills its child if it
    # takes over 0.25 s to exit on ^C (a loaded machine), which leaves a dead process id in the
    # server's list of users: the next test must not inherit that server, so stop it here.
    if (pgdata / "postmaster.pid").exists():
        stop_embedded(pgdata)
    (pgdata / ".handle_pids.json").unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["runserver", "gunicorn"])
def test_a_burst_of_page_loads_leaves_a_handful_of_app_connections(serve, pgdata, kind):
    site = serve(kind)
    figures = measure(site.browser, pgdata)
    print(f"\n{kind}: {json.dumps(figures)}")  # the figures docs/deploy.md quotes (pytest -s)
    assert figures["statuses"] == {200: 150}
    after = figures["after"]
    assert of_role(after, embedded.APP_ROLE) <= HANDFUL, after
    # The app never logs in as the superuser: the reserved slots stay the operator's.
    assert of_role(after, embedded.SUPERUSER) == 0, after


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["runserver", "gunicorn"])
def test_an_idle_sandbox_is_reaped_with_nothing_scheduled(serve, pgdata, kind):
    site = serve(kind, PLAYGROUND_REAP_EVERY_SECONDS="0.5", PLAYGROUND_SANDBOX_IDLE_SECONDS_PER_USE="2")

    def sandbox_roles() -> set[str]:
        with psycopg.connect(host=socket_dir(pgdata), user="postgres", dbname="postgres") as conn:
            rows = conn.execute(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", [TEST_ROLE_PREFIX]
            )
            return {name for (name,) in rows}

    earlier = sandbox_roles()  # an earlier test's, idle as well
    status, result = site.browser.run()
    assert status == 200 and result["ok"], result
    assert len(sandbox_roles() - earlier) == 1
    wait_for(lambda: not sandbox_roles(), timeout=30, interval=0.25)
    # The session simply gets a new sandbox on its next run.
    status, result = site.browser.run()
    assert status == 200 and result["ok"], result
    assert len(sandbox_roles()) == 1
    assert "Traceback" not in site.output()


# --- the health probe while sandboxes hold every connection they may ------------------------
@pytest.mark.slow
def test_healthz_answers_when_sandbox_connections_are_exhausted(make_sandbox, settings):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('reserved_connections')::int")
        (reserved,) = cursor.fetchone()
    if embedded.current() is None and reserved == 0:
        pytest.skip("this server keeps no slots for the app's roles (reserved_connections = 0)")
    assert reserved >= 1
    settings.PLAYGROUND = {
        **settings.PLAYGROUND,
        "CONNECTION_LIMIT": 1000,
    }  # the server's limit, not the role's
    box = make_sandbox()
    credentials = {"user": box.role, "password": sandboxes.role_password(box.role)}
    url = sandboxes.admin_url()
    held: list[psycopg.Connection] = []
    try:
        while True:  # take every slot a sandbox may take, for real
            try:
                held.append(psycopg.connect(**connect_kwargs(url, **credentials)))
            except psycopg.OperationalError as exc:
                refusal = str(exc)
                break
            assert len(held) < 1000
        assert "remaining connection slots are reserved" in refusal, refusal

        # The app's roles open new connections in the reserved slots: the probe answers.
        connection.close()
        sandboxes.forget_admin_engine(url)
        response = Client().get("/healthz")
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["ok"], body["app_database"], body["sandbox_database"]) == (True, "ok", "ok")
        assert body["sandbox_servers"][0] == {"name": "main", "version": 18, "state": "up"}

        # A run meanwhile is refused in plain words, not a 500.
        client = Client(enforce_csrf_checks=True)
        client.get("/api/recipes")
        run = client.post(
            "/api/recipes/offset-pagination/run",
            data='{"params": {"rows": 1000}}',
            content_type="application/json",
            headers={"X-CSRFToken": client.cookies["csrftoken"].value},
        )
        message = run.json().get("error") or ""
        assert run.status_code in (200, 503) and "no connection left for sandboxes" in message, run.content
    finally:
        for conn in held:
            conn.close()
    print(f"\nsandbox connections held when the server refused more: {len(held)} (reserved: {reserved})")
