"""What a run no longer sends: no ping on checkout, the quota's lock wait set by its own
statement, app commits that do not wait for the disk, sandbox logins that are cheap to check, no
SELECT 1 to health-check the app database's connection on every request."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import close_old_connections, connection
from django.utils import timezone
from sqlalchemy import text

from playground import embedded
from playground import sandbox as sandboxes
from playground.running.engine import DISCARD_PENDING, RESET_DUE
from playground.sandbox.roles import SCRAM_ITERATIONS
from tests.conftest import connect_kwargs, superuser_url


def test_a_connection_the_server_ended_is_replaced_without_a_ping(engine, sandbox, run_recipe):
    first = run_recipe(engine, "offset-pagination", "offset")
    assert first.ok, first.error
    assert not engine.pool._pre_ping
    with sandboxes.admin_engine().connect() as conn:
        ended = conn.execute(
            text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = :r"),
            {"r": sandbox.role},
        ).scalar()
    assert ended >= 1  # the pooled connection was idle on the server
    time.sleep(0.2)  # the server's goodbye reaches the socket

    again = run_recipe(engine, "offset-pagination", "offset")
    assert again.ok, again.error
    assert again.rows.data == first.rows.data


def test_the_quota_falls_back_to_the_catalog_when_a_table_is_locked(engine, sandbox, run_recipe):
    assert run_recipe(engine, "offset-pagination", "offset").ok
    exact = sandboxes.size_bytes(sandbox)
    with sandboxes.admin_engine().connect() as conn:
        before = conn.execute(text("SHOW lock_timeout")).scalar()
    holder = psycopg.connect(**connect_kwargs(engine.url, password=engine.url.password))
    try:
        holder.execute("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        estimated = sandboxes.size_bytes(sandbox)
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert waited < 1.5, waited  # the 200 ms wait, not the role's lock timeout nor forever
    assert estimated > 0 and abs(estimated - exact) <= exact // 2, (estimated, exact)
    with sandboxes.admin_engine().connect() as conn:
        assert conn.execute(text("SHOW lock_timeout")).scalar() == before  # nothing left set


def test_app_commits_do_not_wait_for_the_disk_but_sandbox_ones_do(engine, sandbox):
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "off"
    with engine.connect() as conn:
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_a_new_sandbox_password_is_hashed_with_few_rounds(sandbox):
    if embedded.current() is None:
        pytest.skip("reading pg_authid needs the embedded server's superuser")
    url = superuser_url()
    with psycopg.connect(**connect_kwargs(url)) as conn:
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0]
        stored = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [sandbox.role]
        ).fetchone()
    assert stored is not None and stored[0].startswith("SCRAM-SHA-256$")
    rounds = int(stored[0].split("$")[1].split(":")[0])
    assert rounds == (SCRAM_ITERATIONS if version >= 160000 else 4096)
    with psycopg.connect(**connect_kwargs(sandboxes.engine_for(sandbox).url)) as login:
        assert login.execute("SELECT current_user").fetchone()[0] == sandbox.role


def test_an_engine_behind_the_cache_is_kept_without_its_connection(make_sandbox, run_recipe, settings):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "SANDBOX_ENGINE_CACHE": 1}
    first, second = make_sandbox(), make_sandbox()
    engine = sandboxes.engine_for(first)
    assert run_recipe(engine, "offset-pagination", "offset").ok
    assert run_recipe(sandboxes.engine_for(second), "offset-pagination", "offset").ok

    def connections_of(role: str) -> int:
        with sandboxes.admin_engine().connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE usename = :r"), {"r": role}
            ).scalar_one()

    assert connections_of(first.role) == 0  # closed when the second engine took the pooled slot
    assert connections_of(second.role) == 1
    again = sandboxes.engine_for(first)
    assert again is engine  # kept: no new engine, no first-connect queries, statements compiled
    result = run_recipe(again, "offset-pagination", "offset")
    assert result.ok, result.error
    assert any(s.main for s in result.statements) and result.plan is not None  # still captured
    assert connections_of(second.role) == 0 and connections_of(first.role) == 1


def pooled_record(engine):
    """The record of the one idle connection in `engine`'s pool."""
    idle = list(engine.pool._pool.queue)
    assert len(idle) == 1, idle
    return idle[0]


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_goes_back_with_its_reset_sent_and_is_checked_out_after_reading_it(engine):
    first = backend_pid(engine)
    assert pooled_record(engine).info.get(DISCARD_PENDING)  # sent, its answer not read yet
    with engine.connect() as conn:
        conn.execute(text("SET work_mem = '77MB'"))
        conn.commit()
        assert conn.execute(text("SHOW work_mem")).scalar_one() == "77MB"
    with engine.connect() as conn:  # the same backend, its session as the role left it
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == first
        assert conn.execute(text("SHOW work_mem")).scalar_one() != "77MB"


def test_a_connection_whose_reset_was_never_sent_is_not_handed_out(engine):
    first = backend_pid(engine)
    record = pooled_record(engine)
    record.info.pop(DISCARD_PENDING)
    record.info[RESET_DUE] = True  # as if the checkin never came: rolled back, not discarded
    assert backend_pid(engine) != first


def test_a_connection_whose_reset_went_unanswered_is_not_handed_out(engine):
    first = backend_pid(engine)
    record = pooled_record(engine)
    record.dbapi_connection.pgconn.get_result()  # the answer read by someone else: none is left
    while record.dbapi_connection.pgconn.get_result() is not None:
        pass
    assert backend_pid(engine) != first


def spy_on_statements(monkeypatch) -> list[str]:
    """What psycopg's cursors send from now on (until the monkeypatch is undone)."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def counted(cursor, query, *args, **kwargs):
        sent.append(str(query))
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    return sent


@pytest.mark.django_db(transaction=True)
def test_the_app_database_connection_is_health_checked_without_a_query(monkeypatch):
    connection.ensure_connection()
    kept = connection.connection
    sent = spy_on_statements(monkeypatch)
    close_old_connections()  # what Django's handler does when a request starts
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
    assert connection.connection is kept
    assert sent == ["SELECT 2"]  # the health check sent nothing

    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [kept.info.backend_pid])
    time.sleep(0.2)  # the server's goodbye reaches the socket
    close_old_connections()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 3")
        assert cursor.fetchone() == (3,)
    assert connection.connection is not kept  # found ended, replaced before the query


@pytest.mark.django_db(transaction=True)
def test_a_session_is_read_by_one_select_and_never_once_expired(monkeypatch):
    from django.contrib.sessions.models import Session

    from playground.web.sessions import SessionStore

    store = SessionStore()
    store["sandbox"] = "sbx_someone"
    store.save()
    sent = spy_on_statements(monkeypatch)
    assert SessionStore(session_key=store.session_key)["sandbox"] == "sbx_someone"
    assert len(sent) == 1 and sent[0].startswith("SELECT session_data FROM")
    monkeypatch.undo()

    Session.objects.filter(session_key=store.session_key).update(expire_date=timezone.now())
    expired = SessionStore(session_key=store.session_key)
    assert expired.get("sandbox") is None
    assert expired.session_key is None  # a new key is made when it is saved, as Django does
    assert SessionStore(session_key="no-such-key-" + "x" * 20).load() == {}
