"""Sandboxes on a real server: isolation between them, their limits, reset and the reaper."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from psycopg import sql
from sqlalchemy import create_engine, exc, text
from sqlalchemy.pool import NullPool

from playground import sandbox as sandboxes
from playground.models import Sandbox
from tests.conftest import connect_kwargs

pytestmark = pytest.mark.django_db(transaction=True)

SEEDED_ROWS = 1000


def count_documents(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM documents")).scalar_one()


def sqlstate_of(raised: pytest.ExceptionInfo) -> str | None:
    return getattr(raised.value.orig, "sqlstate", None)


def role_exists(role: str) -> bool:
    with sandboxes.admin_engine().connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
        return found is not None


def schema_exists(role: str) -> bool:
    with sandboxes.admin_engine().connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :r"), {"r": role}).first()
        return found is not None


def tables_in(role: str) -> list[str]:
    with sandboxes.admin_engine().connect() as conn:
        return list(
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :r"), {"r": role}).scalars()
        )


# --- isolation ------------------------------------------------------------------------------
@pytest.fixture
def two_sandboxes(make_sandbox, run_recipe):
    """A (empty) and B (seeded with documents), with their engines."""
    a, b = make_sandbox(), make_sandbox()
    engine_a, engine_b = sandboxes.engine_for(a), sandboxes.engine_for(b)
    seeded = run_recipe(engine_b, "offset-pagination", "offset", rows=SEEDED_ROWS)
    assert seeded.ok, seeded.error
    assert count_documents(engine_b) == SEEDED_ROWS
    return a, engine_a, b, engine_b


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM {b}.documents",
        "SELECT count(*) FROM {b}._datasets",
        "INSERT INTO {b}.documents (owner_id, title) VALUES (1, 'intruder')",
        "UPDATE {b}.documents SET title = 'intruder'",
        "DELETE FROM {b}.documents",
        "TRUNCATE {b}.documents",
        "DROP TABLE {b}.documents",
        "CREATE TABLE {b}.planted (id int)",
    ],
    ids=["select", "select-registry", "insert", "update", "delete", "truncate", "drop", "create"],
)
def test_a_sandbox_cannot_touch_another_sandboxs_schema(two_sandboxes, statement):
    _, engine_a, b, engine_b = two_sandboxes
    quoted = sql.Identifier(b.role).as_string()
    with engine_a.connect() as conn, pytest.raises(exc.ProgrammingError) as raised:
        conn.execute(text(statement.format(b=quoted)))
    assert sqlstate_of(raised) == "42501", raised.value
    assert count_documents(engine_b) == SEEDED_ROWS
    assert "documents" in tables_in(b.role)


def test_a_sandbox_cannot_become_another_role(two_sandboxes):
    a, engine_a, b, _ = two_sandboxes
    with engine_a.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == a.role
        with pytest.raises(exc.ProgrammingError) as raised:
            conn.execute(text(f"SET ROLE {sql.Identifier(b.role).as_string()}"))
    assert sqlstate_of(raised) == "42501"


def test_a_sandbox_cannot_create_outside_its_schema(engine, sandbox):
    with engine.connect() as conn, pytest.raises(exc.ProgrammingError) as raised:
        conn.execute(text("CREATE TABLE public.x (id int)"))
    assert sqlstate_of(raised) == "42501"
    with engine.connect() as conn, pytest.raises(exc.ProgrammingError) as raised:
        conn.execute(text("CREATE SCHEMA somewhere_else"))
    assert sqlstate_of(raised) == "42501"
    # ... while its own schema is its to use.
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE mine (id int)"))
        schema = conn.execute(text("SELECT schemaname FROM pg_tables WHERE tablename = 'mine'")).scalar_one()
    assert schema == sandbox.role


def test_a_sandbox_cannot_reach_the_app_database(engine, sandbox):
    app_db = connection.settings_dict["NAME"]
    url = sandboxes.admin_url()
    assert app_db != url.database
    credentials = {"user": sandbox.role, "password": sandboxes.role_password(sandbox.role)}

    # The same credentials do open the sandbox database ...
    with psycopg.connect(**connect_kwargs(url, **credentials)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (sandbox.role,)
    # ... but not the app's.
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(**connect_kwargs(url, dbname=app_db, **credentials))

    # The app's tables (sessions among them) are not reachable from inside the sandbox database.
    quoted_db = sql.Identifier(app_db).as_string()
    for statement, sqlstates in (
        ("SELECT * FROM django_session", {"42P01"}),
        ("SELECT * FROM public.django_session", {"42P01", "42501"}),
        (f"SELECT * FROM {quoted_db}.public.django_session", {"0A000"}),
    ):
        with engine.connect() as conn, pytest.raises(exc.DBAPIError) as raised:
            conn.execute(text(statement))
        assert sqlstate_of(raised) in sqlstates, (statement, raised.value)


def test_sandbox_login_requires_the_password(sandbox):
    url = sandboxes.admin_url()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**connect_kwargs(url, user=sandbox.role, password="not-" + sandbox.role))
    with psycopg.connect(
        **connect_kwargs(url, user=sandbox.role, password=sandboxes.role_password(sandbox.role))
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (sandbox.role,)


# --- limits ---------------------------------------------------------------------------------
def test_role_settings_are_applied(engine, sandbox, settings):
    conf = settings.PLAYGROUND
    with engine.connect() as conn:

        def setting(name: str) -> str:
            return conn.execute(
                text("SELECT setting FROM pg_settings WHERE name = :n"), {"n": name}
            ).scalar_one()

        assert int(setting("statement_timeout")) == conf["STATEMENT_TIMEOUT_MS"]
        assert int(setting("lock_timeout")) == conf["LOCK_TIMEOUT_MS"]
        assert int(setting("idle_in_transaction_session_timeout")) == conf["IDLE_IN_TRANSACTION_TIMEOUT_MS"]
        assert conn.execute(text("SHOW work_mem")).scalar_one() == conf["WORK_MEM"]
        assert conn.execute(text("SHOW temp_file_limit")).scalar_one() == conf["TEMP_FILE_LIMIT"]
        assert conn.execute(text("SHOW search_path")).scalar_one() == sandbox.role
        assert conn.execute(text("SELECT current_schema()")).scalar_one() == sandbox.role
        role = conn.execute(
            text(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolbypassrls, rolconnlimit "
                "FROM pg_roles WHERE rolname = current_user"
            )
        ).one()
    assert tuple(role) == (False, False, False, False, False, conf["CONNECTION_LIMIT"])


RELAXED = {
    "statement_timeout": "0",
    "work_mem": "1GB",
    "lock_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
    "client_connection_check_interval": "0",
    "search_path": "public",
}


def limits_of(conn) -> dict[str, str]:
    return {name: conn.execute(text(f"SELECT current_setting('{name}')")).scalar_one() for name in RELAXED}


def test_a_sandbox_role_cannot_relax_its_own_limits_for_new_connections(engine, sandbox, settings):
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn:
        configured = limits_of(conn)
        for name, value in RELAXED.items():
            conn.execute(text(f"ALTER ROLE CURRENT_USER SET {name} = '{value}'"))
        # The one limit a role cannot touch at all: changing it needs a privilege it lacks.
        with pytest.raises(exc.ProgrammingError) as raised:
            conn.execute(text("ALTER ROLE CURRENT_USER SET temp_file_limit = -1"))
        assert sqlstate_of(raised) == "42501"
    assert configured["statement_timeout"] == f"{settings.PLAYGROUND['STATEMENT_TIMEOUT_MS'] // 1000}s"

    # The role's own defaults did change: a client logging in without options gets them ...
    url = sandboxes.admin_url()
    credentials = {"user": sandbox.role, "password": sandboxes.role_password(sandbox.role)}
    with psycopg.connect(**connect_kwargs(url, **credentials)) as plain:
        shown = {n: plain.execute(f"SELECT current_setting('{n}')").fetchone()[0] for n in RELAXED}
        assert shown == RELAXED
    # ... but every new connection the app opens as the role keeps the configured limits: a new
    # engine, and a second engine derived from it as a variant makes one (Run.engine_with).
    sandboxes.forget_engine(sandbox.role)
    fresh = sandboxes.engine_for(sandbox)
    with fresh.connect() as conn:
        assert limits_of(conn) == configured
        assert (
            conn.execute(text("SHOW temp_file_limit")).scalar_one() == settings.PLAYGROUND["TEMP_FILE_LIMIT"]
        )
    derived = create_engine(fresh.url, poolclass=NullPool)
    try:
        with derived.connect() as conn:
            assert limits_of(conn) == configured
    finally:
        derived.dispose()


def test_test_sandboxes_are_kept_apart_from_development_ones(sandbox):
    assert sandbox.role.startswith("sbxt_")
    assert sandboxes.admin_url().database == f"{connection.settings_dict['NAME']}_sandbox"
    assert connection.settings_dict["NAME"].startswith("test_")


# --- lifecycle ------------------------------------------------------------------------------
def test_drop_removes_role_schema_and_row(make_sandbox, run_recipe):
    sb = make_sandbox()
    engine = sandboxes.engine_for(sb)
    result = run_recipe(engine, "offset-pagination", "offset", rows=SEEDED_ROWS)
    assert result.ok, result.error
    assert role_exists(sb.role) and schema_exists(sb.role)

    sandboxes.drop(sb)  # with the engine's pooled connections still open

    assert not role_exists(sb.role)
    assert not schema_exists(sb.role)
    assert not Sandbox.objects.filter(pk=sb.pk).exists()


def test_provision_refuses_beyond_the_limit(make_sandbox, settings):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "MAX_SANDBOXES": 1}
    only = make_sandbox()
    with pytest.raises(sandboxes.SandboxLimitError):
        make_sandbox()
    assert list(Sandbox.objects.values_list("role", flat=True)) == [only.role]


# --- reset ----------------------------------------------------------------------------------
def test_reset_empties_the_schema_and_a_later_run_reseeds(engine, sandbox, run_recipe):
    first = run_recipe(engine, "offset-pagination", "offset")
    assert first.ok, first.error
    assert {"documents", "_datasets"} <= set(tables_in(sandbox.role))

    sandboxes.reset(sandbox)
    assert tables_in(sandbox.role) == []
    assert schema_exists(sandbox.role)

    again = run_recipe(sandboxes.engine_for(sandbox), "offset-pagination", "offset")
    assert again.ok, again.error
    assert any(line.startswith("seeded documents") for line in again.setup), again.setup
    assert again.rows is not None and again.rows.data == first.rows.data
    assert "documents" in tables_in(sandbox.role)


# --- reaper ---------------------------------------------------------------------------------
def test_reap_drops_idle_sandboxes_only(make_sandbox, run_recipe):
    old, fresh = make_sandbox(), make_sandbox()
    for sb in (old, fresh):
        result = run_recipe(sandboxes.engine_for(sb), "offset-pagination", "offset", rows=SEEDED_ROWS)
        assert result.ok, result.error
    Sandbox.objects.filter(pk=old.pk).update(last_used_at=timezone.now() - timedelta(days=2))

    assert sandboxes.reap(idle_seconds=3600) == [old.role]

    assert not role_exists(old.role)
    assert not schema_exists(old.role)
    assert not Sandbox.objects.filter(pk=old.pk).exists()

    assert role_exists(fresh.role)
    assert schema_exists(fresh.role)
    assert Sandbox.objects.filter(pk=fresh.pk).exists()
    after = run_recipe(sandboxes.engine_for(fresh), "offset-pagination", "offset", rows=SEEDED_ROWS)
    assert after.ok, after.error
    assert after.setup == []  # its data survived: nothing had to be seeded again

    assert sandboxes.reap(idle_seconds=3600) == []
