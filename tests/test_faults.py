"""Faults while the site is up: terminated backends, killed workers, restarts, racing reapers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import Sandbox
from playground.running import limits, runner, service
from playground.running.service import SESSION_KEY
from tests.conftest import TEST_ROLE_PREFIX
from tests.probes import activity, probe, sandboxed_session, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session(transactional_db):
    yield from sandboxed_session()


ROOT = Path(django_settings.BASE_DIR)


def role_exists(role: str) -> bool:
    with sandboxes.admin_engine().connect() as conn:
        return (
            conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None
        )


def schema_exists(role: str) -> bool:
    with sandboxes.admin_engine().connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :r"), {"r": role}).first()
        return found is not None


def pid_of(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


# --- a backend terminated mid-run -----------------------------------------------------------
def test_a_backend_terminated_mid_run_is_an_error_rolled_back_and_discarded(sandbox):
    engine = sandboxes.engine_for(sandbox)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE marks (id int)"))
    outcome = {}

    def run():
        recipe = probe("INSERT INTO marks VALUES (99)", "SELECT pg_sleep(30)")
        outcome["result"] = runner.run(recipe=recipe, variant="probe", params={}, engine=engine)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: activity(sandbox.role, "SELECT pg_sleep%"), timeout=10)
    (victim, _), *_ = activity(sandbox.role, "SELECT pg_sleep%")
    with sandboxes.admin_engine().connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": victim}).scalar_one()
    thread.join(15)
    assert not thread.is_alive()

    result = outcome["result"]
    assert not result.ok
    message = limits.explain_error(result.error)
    assert message.startswith("The connection to the database was lost"), message
    assert "57P01" in message
    assert engine.pool.checkedout() == 0
    with engine.connect() as conn:  # rolled back, and the dead connection was not handed out again
        assert conn.execute(text("SELECT count(*) FROM marks")).scalar_one() == 0
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != victim
    again = runner.run(recipe=probe("SELECT 1"), variant="probe", params={}, engine=engine)
    assert again.ok, again.error


# --- a web worker killed mid-run ------------------------------------------------------------
KILLED_CLIENT = """
import sys, psycopg
conn = psycopg.connect(**eval(sys.argv[1]))
conn.execute(sys.argv[2])
print("ready", flush=True)
conn.execute("SELECT pg_sleep(60)")
"""


def _killed_client(sandbox, session_sql: str) -> float:
    """Start a client running a long query as the sandbox role, SIGKILL it; seconds until it is gone."""
    from tests.conftest import connect_kwargs

    url = sandboxes.engine_for(sandbox).url
    kwargs = connect_kwargs(url, user=sandbox.role, password=sandboxes.role_password(sandbox.role))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, repr(kwargs), session_sql], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_for(lambda: activity(sandbox.role, "SELECT pg_sleep(60)"), timeout=10)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return wait_for(lambda: not activity(sandbox.role, "SELECT pg_sleep(60)"), timeout=30)


@pytest.mark.slow
def test_a_killed_workers_query_is_stopped_by_the_client_check(sandbox, settings):
    check = settings.PLAYGROUND["CLIENT_CHECK_INTERVAL_MS"] / 1000
    # Statement timeout out of the way: the server notices the dead client by itself.
    gone_after = _killed_client(sandbox, "SET statement_timeout = '120s'")
    assert gone_after < check + 2, gone_after


@pytest.mark.slow
def test_a_killed_workers_query_is_stopped_by_the_statement_timeout(sandbox):
    # Without the client check, the statement timeout still ends it.
    gone_after = _killed_client(
        sandbox, "SET client_connection_check_interval = 0; SET statement_timeout = '2s'"
    )
    assert gone_after < 2 + 2, gone_after


# --- Postgres restarted while the site is up ------------------------------------------------
@pytest.mark.slow
def test_a_postgres_restart_fails_only_in_flight_runs(tmp_path):
    """In its own embedded server (a restart stops the whole cluster): see tests/restart_check.py."""
    env = {**os.environ, "PLAYGROUND_PGDATA": str(tmp_path / "pgdata"), "DEBUG": "1"}
    env.pop("DATABASE_URL", None)
    env.pop("SANDBOX_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.restart_check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(lines[-1].removeprefix("REPORT "))
    assert report["before"] == [200, True, None]
    assert report["in_flight"]["ok"] is False
    assert report["in_flight"]["error"].startswith("The connection to the database was lost")
    assert report["after"] == [200, True, None], report
    assert report["healthz"] == 200
    assert report["again"] == [200, True, None]


def test_a_database_outage_is_a_503_with_a_message_not_a_500(settings, transactional_db):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.get("/api/recipes")
    broken = {**settings.PLAYGROUND, "SANDBOX_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"}
    settings.PLAYGROUND = broken
    response = client.post(
        "/api/recipes/offset-pagination/run",
        data=json.dumps({"params": {"rows": 1000}}),
        content_type="application/json",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )
    assert response.status_code == 503
    assert response.json()["error"].startswith("The database is not answering right now")


# --- the reaper -----------------------------------------------------------------------------
def _reaper_env() -> dict[str, str]:
    """Environment making `manage.py` use this test run's databases and role prefix."""
    s = connection.settings_dict
    host = quote(str(s["HOST"]), safe="") if str(s["HOST"]).startswith("/") else s["HOST"]
    auth = s["USER"] + (f":{quote(s['PASSWORD'])}" if s["PASSWORD"] else "")
    port = f":{s['PORT']}" if s["PORT"] else ""
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{auth}@{host}{port}/{s['NAME']}",
        "PLAYGROUND_ROLE_PREFIX": TEST_ROLE_PREFIX,
    }
    # The sandbox administrator explicitly: on the embedded server it is a role of its own.
    env["SANDBOX_DATABASE_URL"] = sandboxes.admin_url().render_as_string(hide_password=False)
    return env


@pytest.mark.slow
def test_two_reapers_at_once_drop_each_idle_sandbox_once_and_spare_the_busy_one(make_sandbox):
    idle = [make_sandbox() for _ in range(8)]
    busy, fresh = make_sandbox(), make_sandbox()
    for box in [*idle, busy, fresh]:
        with sandboxes.engine_for(box).begin() as conn:
            conn.execute(text("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 20000) g"))
            conn.execute(text("CREATE INDEX ON t (id)"))
    long_ago = timezone.now() - timedelta(days=2)
    Sandbox.objects.filter(pk__in=[b.pk for b in [*idle, busy]]).update(last_used_at=long_ago)

    # The busy sandbox holds a row lock in an open transaction (idle since its last use: a run
    # between statements, or a slow person in another tab).
    holder = sandboxes.engine_for(busy).connect()
    holder.execute(text("SELECT * FROM t WHERE id = 1 FOR UPDATE"))
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "manage.py", "reap_sandboxes", "--idle-seconds", "3600"],
                cwd=ROOT,
                env=_reaper_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert holder.execute(text("SELECT count(*) FROM t")).scalar_one() == 20000
    finally:
        holder.rollback()
        holder.close()

    dropped = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "ERROR" not in err, err
        dropped.append({line.split()[1] for line in out.splitlines() if line.startswith("dropped ")})
    assert not dropped[0] & dropped[1], "a sandbox was dropped twice"
    assert dropped[0] | dropped[1] == {b.role for b in idle}
    for box in idle:
        assert not role_exists(box.role) and not schema_exists(box.role)
        assert not Sandbox.objects.filter(pk=box.pk).exists()
    for box in (busy, fresh):
        assert role_exists(box.role) and schema_exists(box.role)
        assert Sandbox.objects.filter(pk=box.pk).exists()
    assert sandboxes.reap(idle_seconds=3600) == [busy.role]  # once its transaction ended


def test_a_sandbox_reaped_under_a_request_is_replaced_not_used(session):
    first = service.run_recipe(session, probe("SELECT 1"), "probe", {})
    assert first.ok
    stale = Sandbox.objects.get(role=session[SESSION_KEY])
    sandboxes.drop(stale)  # a reaper won the race: the session still names the dropped sandbox
    assert sandboxes.touch(stale) is False
    assert sandboxes.claim(stale.role) is None  # lookup and "in use" mark are one UPDATE

    result = service.run_recipe(session, probe("SELECT current_user"), "probe", {})
    assert result.ok, result.error
    assert session[SESSION_KEY] != stale.role
    assert result.rows.data == [[session[SESSION_KEY]]]


def test_provisioning_and_dropping_concurrently_never_collide(transactional_db):
    """GRANT/REVOKE on one database row from many sessions at once is serialized, not an error."""
    made, errors = [], []

    def provision():
        try:
            made.append(sandboxes.provision())
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=provision) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(made) == 8

    def drop(box):
        try:
            sandboxes.drop(box)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=drop, args=(box,)) for box in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not any(role_exists(b.role) for b in made)


# --- run slots ------------------------------------------------------------------------------
def test_when_every_run_slot_is_taken_a_run_waits_then_gets_a_clear_503(settings, transactional_db):
    from django.test import Client

    settings.PLAYGROUND = {**settings.PLAYGROUND, "RUNS_PER_PROCESS": 1, "RUN_SLOT_WAIT_SECONDS": 0.3}
    client = Client(enforce_csrf_checks=True)
    client.get("/api/recipes")

    def post():
        return client.post(
            "/api/recipes/offset-pagination/run",
            data=json.dumps({"params": {"rows": 1000}}),
            content_type="application/json",
            headers={"X-CSRFToken": client.cookies["csrftoken"].value},
        )

    try:
        with sandboxes.run_slot():  # another thread's run in progress
            busy = post()
        assert busy.status_code == 503
        assert busy.json()["error"].startswith("The playground is busy")
        assert post().status_code == 200
    finally:
        for box in Sandbox.objects.all():
            sandboxes.drop(box)
