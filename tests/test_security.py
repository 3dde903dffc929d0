"""A hostile sandbox, hostile input and runaway work, against the real server.

test_sandbox.py covers reading and writing another sandbox, the app database, `public` and
CREATE SCHEMA / SET ROLE; this file covers the rest of what a sandbox role must not do, the limits
a run can hit (each with a clear message and the sandbox still usable afterwards), and the web
layer's defences.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from sqlalchemy import exc, text

import recipes
from playground import sandbox as sandboxes
from playground.models import RunAllowance, Sandbox
from playground.running import limits, service
from playground.running.service import SESSION_KEY
from playground.web.forms import RunForm
from recipes.results import Plan, RunResult, Statement, TableRows
from tests.conftest import connect_kwargs
from tests.probes import activity, probe, recipe_of, sandboxed_session, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session(transactional_db):
    yield from sandboxed_session()


SMALL = 1000


def sqlstate(raised: pytest.ExceptionInfo) -> str | None:
    return getattr(getattr(raised.value, "orig", raised.value), "sqlstate", None)


def refused(engine, statement: str, params: dict[str, Any] | None = None) -> str | None:
    """Run `statement` as the sandbox role, outside a transaction; the SQLSTATE it failed with."""
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn, pytest.raises(exc.DBAPIError) as raised:
        conn.execute(text(statement), params or {})
    return sqlstate(raised)


def with_role_settings(settings, **overrides: Any) -> None:
    """Change PLAYGROUND keys for this test (role settings apply to sandboxes provisioned after)."""
    settings.PLAYGROUND = {**settings.PLAYGROUND, **overrides}


# --- what a sandbox role cannot do ----------------------------------------------------------
@pytest.mark.parametrize(
    "statement",
    [
        "CREATE DATABASE intruder",
        "CREATE ROLE intruder",
        "CREATE ROLE intruder SUPERUSER LOGIN",
        "CREATE USER intruder PASSWORD 'x'",
        "CREATE SCHEMA AUTHORIZATION CURRENT_USER",
        "ALTER ROLE CURRENT_USER CONNECTION LIMIT -1",
        "ALTER ROLE CURRENT_USER SUPERUSER",
        "ALTER ROLE CURRENT_USER CREATEROLE",
        "CREATE TEMP TABLE t (id int)",
        "SET SESSION AUTHORIZATION postgres",
        "SET ROLE postgres",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_file('postgresql.conf')",
        "SELECT pg_read_binary_file('/etc/hostname')",
        "SELECT pg_ls_dir('.')",
        "SELECT pg_stat_file('postgresql.conf')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(0, '/tmp/intruder')",
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "COPY (SELECT 1) TO '/tmp/intruder'",
        "ALTER SYSTEM SET max_connections = 5",
        "SELECT pg_reload_conf()",
        "LOAD 'plpgsql'",
        "SET log_statement = 'none'",
        "CREATE FOREIGN DATA WRAPPER intruder",
        "CREATE LANGUAGE intruder HANDLER plpgsql_call_handler",
    ],
)
def test_a_sandbox_cannot_reach_outside_its_schema(engine, statement):
    assert refused(engine, statement) == "42501", statement


def test_a_sandbox_cannot_read_files_or_run_programs_through_its_own_tables(engine):
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE loot (line text)"))
    for statement in ("COPY loot FROM PROGRAM 'cat /etc/passwd'", "COPY loot FROM '/etc/passwd'"):
        assert refused(engine, statement) == "42501", statement
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM loot")).scalar_one() == 0


@pytest.mark.parametrize("extension", ["vector", "dblink", "file_fdw", "postgres_fdw", "pg_trgm", "hstore"])
def test_a_sandbox_cannot_create_extensions(engine, extension):
    with engine.connect() as conn:
        available = conn.execute(
            text("SELECT 1 FROM pg_available_extensions WHERE name = :n"), {"n": extension}
        ).first()
    if not available:
        pytest.skip(f"{extension} is not shipped with this server")
    # Trusted ones (pg_trgm, hstore) included: they need CREATE on the database, which it lacks.
    assert refused(engine, f'CREATE EXTENSION "{extension}"') == "42501"


@pytest.mark.parametrize("function", ["pg_terminate_backend", "pg_cancel_backend"])
def test_a_sandbox_cannot_signal_other_roles_backends(make_sandbox, function):
    a, b = make_sandbox(), make_sandbox()
    engine_a, engine_b = sandboxes.engine_for(a), sandboxes.engine_for(b)
    with engine_b.connect() as victim, sandboxes.admin_engine().connect() as admin:
        victim_pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin_pid = admin.execute(text("SELECT pg_backend_pid()")).scalar_one()
        for pid in (victim_pid, admin_pid):
            assert refused(engine_a, f"SELECT {function}(:pid)", {"pid": pid}) == "42501"
        assert victim.execute(text("SELECT current_user")).scalar_one() == b.role
        assert admin.execute(text("SELECT 1")).scalar_one() == 1


def test_the_connection_limit_is_enforced_with_a_clear_message(settings, session):
    limit = 3
    with_role_settings(settings, CONNECTION_LIMIT=limit)
    warm = service.run_recipe(session, probe("SELECT 1"), "probe", {})
    assert warm.ok, warm.error
    box = Sandbox.objects.get(role=session[SESSION_KEY])
    sandboxes.forget_engine(box.role)  # no pooled connection of its own left open

    def hog(run, p):
        engine = run.engine_with(pool_size=limit + 1, max_overflow=0)
        held = []
        try:
            for _ in range(limit + 1):
                held.append(engine.connect())
        finally:
            for conn in held:
                conn.close()

    result = service.run_recipe(session, recipe_of(hog), "probe", {})
    assert not result.ok
    assert "too many connections for role" in result.error
    assert result.error.startswith(f"This sandbox already holds its {limit} connections")

    url = sandboxes.engine_for(box).url
    sandboxes.forget_engine(box.role)
    wait_for(lambda: not activity(box.role), timeout=5)
    credentials = {"user": box.role, "password": sandboxes.role_password(box.role)}
    held = [psycopg.connect(**connect_kwargs(url, **credentials)) for _ in range(limit)]
    try:
        with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
            psycopg.connect(**connect_kwargs(url, **credentials))
    finally:
        for conn in held:
            conn.close()
    again = service.run_recipe(session, probe("SELECT 1"), "probe", {})
    assert again.ok, again.error


def test_idle_connections_per_process_are_bounded_by_the_engine_cache(make_sandbox, settings):
    with_role_settings(settings, SANDBOX_ENGINE_CACHE=3)
    boxes = [make_sandbox() for _ in range(6)]
    for box in boxes:
        with sandboxes.engine_for(box).connect() as conn:
            conn.execute(text("SELECT 1"))
    with sandboxes.admin_engine().connect() as conn:
        held = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE usename = ANY(:roles)"),
            {"roles": [b.role for b in boxes]},
        ).scalar_one()
    assert held <= 3 * settings.PLAYGROUND["SANDBOX_POOL_SIZE"]


def test_the_playground_cannot_exhaust_the_servers_connections():
    """The documented bound, for the deployment's gunicorn settings, stays below max_connections."""
    conf_file = Path(django_settings.BASE_DIR) / "gunicorn.conf.py"
    workers, threads = 3, 1  # the defaults the load benchmark runs with
    if conf_file.exists():
        values: dict[str, Any] = {}
        exec(compile(conf_file.read_text(), str(conf_file), "exec"), values)  # noqa: S102
        workers = int(values.get("workers", workers))
        threads = int(values.get("threads", threads))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - coalesce(current_setting('reserved_connections', true), '0')::int"
        )
        (usable,) = cursor.fetchone()
    assert sandboxes.connection_budget(workers, threads) < usable, (workers, threads, usable)


# --- parameters never become SQL ------------------------------------------------------------
PAYLOADS = [
    "x'); DROP TABLE documents; --",
    "' OR '1'='1",
    '"; DROP SCHEMA public CASCADE; --',
    "$$; SELECT pg_sleep(5); $$",
    "%s %(email)s {0} \\' \\\\",
    "<script>alert(1)</script>",
    "Ünïcødé ✓ 𝄞",
]


def _str_params() -> list[tuple[str, str]]:
    return [(r.slug, p.name) for r in recipes.REGISTRY.values() for p in r.params if p.kind == "str"]


@pytest.mark.parametrize(("slug", "name"), _str_params() or [pytest.param("-", "-", marks=pytest.mark.skip)])
def test_injection_attempts_in_string_parameters_are_data(slug, name):
    recipe = recipes.get(slug)
    client = Client(enforce_csrf_checks=True)
    client.get("/api/recipes")
    token = client.cookies["csrftoken"].value
    small = {p.name: p.min for p in recipe.params if p.kind == "int" and p.min is not None}
    try:
        for payload in PAYLOADS:
            value = payload[: recipe.param(name).max_length]
            response = client.post(
                f"/api/recipes/{slug}/run",
                data=json.dumps({"params": {**small, name: value}}),
                content_type="application/json",
                headers={"X-CSRFToken": token},
            )
            assert response.status_code in (200, 400), response.content
            if response.status_code == 400:  # the recipe's own validation refused it: fine
                continue
            body = response.json()
            assert body["ok"], (payload, body["error"])
            for statement in body["statements"]:
                assert value not in statement["sql"], (payload, statement["sql"])
        # The sandbox's tables are all still there.
        with sandboxes.admin_engine().connect() as conn:
            assert conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = :r"),
                {"r": client.session[SESSION_KEY]},
            ).scalar_one()
    finally:
        for box in Sandbox.objects.all():
            sandboxes.drop(box)


def test_optional_index_names_come_from_the_datasets_allow_list(engine):
    from recipes.context import Setup
    from recipes.datasets import DOCUMENTS

    with engine.begin() as conn:
        Setup(conn).dataset(DOCUMENTS, rows=SMALL, owners=10)
        with pytest.raises(KeyError):
            Setup(conn).indexes(DOCUMENTS, {"ix_x ON documents (id); DROP TABLE documents; --"})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM documents")).scalar_one() == SMALL


# --- runaway work stops, with a clear message, and the sandbox stays usable -----------------
def test_statement_timeout_stops_a_run_and_the_sandbox_stays_usable(settings, session):
    with_role_settings(settings, STATEMENT_TIMEOUT_MS=300)
    started = time.monotonic()
    result = service.run_recipe(session, probe("SELECT pg_sleep(5)"), "probe", {})
    assert time.monotonic() - started < 3
    assert not result.ok
    assert result.error.startswith("The statement ran longer than the sandbox's statement timeout (0.3 s)")
    assert "SQLSTATE 57014" in result.error
    again = service.run_recipe(session, probe("SELECT 42 AS answer"), "probe", {})
    assert again.ok and again.rows.data == [[42]]


def test_statement_timeout_is_below_the_web_workers_timeout():
    conf_file = Path(django_settings.BASE_DIR) / "gunicorn.conf.py"
    worker_timeout = 30  # gunicorn's default
    if conf_file.exists():
        values: dict[str, Any] = {}
        exec(compile(conf_file.read_text(), str(conf_file), "exec"), values)  # noqa: S102
        worker_timeout = int(values.get("timeout", worker_timeout))
    assert django_settings.PLAYGROUND["STATEMENT_TIMEOUT_MS"] / 1000 < worker_timeout


def test_lock_timeout_stops_a_blocked_run(settings, session):
    with_role_settings(settings, LOCK_TIMEOUT_MS=300)
    made = service.run_recipe(
        session, probe("CREATE TABLE counters (n int)", "INSERT INTO counters VALUES (1)"), "probe", {}
    )
    assert made.ok, made.error
    engine = sandboxes.engine_for(Sandbox.objects.get(role=session[SESSION_KEY]))
    with engine.connect() as holder:
        holder.execute(text("LOCK TABLE counters IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        blocked = service.run_recipe(session, probe("UPDATE counters SET n = n + 1"), "probe", {})
        assert time.monotonic() - started < 3
        holder.rollback()
    assert not blocked.ok
    assert blocked.error.startswith("The statement waited longer than the lock timeout (0.3 s)")
    after = service.run_recipe(
        session, probe("UPDATE counters SET n = n + 1", "SELECT n FROM counters"), "probe", {}
    )
    assert after.ok and after.rows.data == [[2]]


@pytest.mark.slow
def test_idle_in_transaction_timeout_ends_an_abandoned_transaction(settings, session):
    with_role_settings(settings, IDLE_IN_TRANSACTION_TIMEOUT_MS=300)

    def dawdle(run, p):
        with run.connect() as conn:
            conn.execute(text("SELECT 1"))  # a transaction is now open
            time.sleep(1.2)
            conn.execute(text("SELECT 2"))

    result = service.run_recipe(session, recipe_of(dawdle), "probe", {})
    assert not result.ok
    assert result.error.startswith("A transaction stayed idle longer than 0.3 s"), result.error
    again = service.run_recipe(session, probe("SELECT 1 AS ok"), "probe", {})
    assert again.ok, again.error


def test_temp_file_limit_stops_a_big_sort(settings, session):
    with_role_settings(settings, TEMP_FILE_LIMIT="1MB", WORK_MEM="64kB")
    big_sort = "SELECT count(*) FROM (SELECT g FROM generate_series(1, 400000) g ORDER BY random()) s"
    result = service.run_recipe(session, probe(big_sort), "probe", {})
    assert not result.ok
    assert "SQLSTATE 53400" in result.error
    assert result.error.startswith("The run needed more than the sandbox's limit (1MB of temporary files")
    again = service.run_recipe(session, probe("SELECT count(*) FROM generate_series(1, 1000)"), "probe", {})
    assert again.ok and again.rows.data == [[1000]]


def test_rows_returned_to_the_browser_are_capped(settings, session):
    result = service.run_recipe(session, probe("SELECT g FROM generate_series(1, 5000) g"), "probe", {})
    cap = settings.PLAYGROUND["MAX_ROWS_SHOWN"]
    assert result.ok
    assert result.rows.total == 5000
    assert result.rows.truncated is True
    assert len(result.rows.data) == len(result.to_json()["rows"]["data"]) == cap


def _api_run(client: Client, slug: str, params: dict[str, Any], **headers: str):
    if "csrftoken" not in client.cookies:
        client.get("/api/recipes")
    return client.post(
        f"/api/recipes/{slug}/run",
        data=json.dumps({"params": params}),
        content_type="application/json",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value, **headers},
    )


@pytest.fixture
def drop_all_sandboxes(transactional_db):
    yield
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


def test_sandbox_size_quota_refuses_growth_until_reset(settings, drop_all_sandboxes):
    with_role_settings(settings, SANDBOX_MAX_BYTES=64 * 1024)
    client = Client(enforce_csrf_checks=True)
    first = _api_run(client, "offset-pagination", {"rows": SMALL})
    assert first.status_code == 200 and first.json()["ok"]  # crosses the quota: it still ran

    over = _api_run(client, "offset-pagination", {"rows": SMALL})
    assert over.status_code == 507
    message = over.json()["error"]
    assert message.startswith("Over quota: this sandbox holds")
    assert "Press Reset" in message

    html = client.post(
        "/recipes/offset-pagination/run",
        data={"rows": SMALL},
        headers={"X-CSRFToken": client.cookies["csrftoken"].value, "HX-Request": "true"},
    )
    assert html.status_code == 507 and "Over quota" in html.content.decode()

    reset = client.post(
        "/sandbox/reset",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value, "Accept": "application/json"},
    )
    assert reset.json()["reset"] is True
    after = _api_run(client, "offset-pagination", {"rows": SMALL})
    assert after.status_code == 200 and after.json()["ok"]


@pytest.mark.slow
def test_a_million_row_documents_table_fits_the_default_quota(make_sandbox, run_recipe, settings):
    box = make_sandbox()
    result = run_recipe(sandboxes.engine_for(box), "keyset-pagination", "keyset", rows=1_000_000)
    assert result.ok, result.error
    size = sandboxes.check_quota(box)  # does not raise
    assert 50 * 2**20 < size < settings.PLAYGROUND["SANDBOX_MAX_BYTES"]


def test_a_full_instance_refuses_new_sandboxes_with_a_clear_503(settings, drop_all_sandboxes):
    with_role_settings(settings, MAX_SANDBOXES=1)
    first = _api_run(Client(enforce_csrf_checks=True), "offset-pagination", {"rows": SMALL})
    assert first.status_code == 200
    refused_run = _api_run(Client(enforce_csrf_checks=True), "offset-pagination", {"rows": SMALL})
    assert refused_run.status_code == 503
    assert refused_run.json()["error"].startswith("This playground is full")
    assert Sandbox.objects.count() == 1


# --- pooled connections carry nothing from one run to the next -----------------------------
def test_session_state_is_discarded_between_runs(settings, session):
    conf = settings.PLAYGROUND
    dirty = probe(
        "SET statement_timeout = 0",
        "SET work_mem = '512MB'",
        "SET search_path = public, pg_catalog",
        "SELECT pg_advisory_lock(4242)",
        "PREPARE leftover AS SELECT 1",
        "SELECT pg_backend_pid()",
    )
    # The first one's SETs are committed with its transaction; the second one's run outside any.
    dirty_outside = recipe_of(
        lambda run, p: _run_autocommit(
            run,
            "SET statement_timeout = 0",
            "SET work_mem = '512MB'",
            "SET search_path = public, pg_catalog",
            "SELECT pg_advisory_lock(4242)",
            "PREPARE leftover AS SELECT 1",
        )
    )
    for recipe in (dirty, dirty_outside):
        assert service.run_recipe(session, recipe, "probe", {}).ok
        check = service.run_recipe(
            session,
            probe(
                "SELECT pg_backend_pid(), current_setting('statement_timeout'), "
                "current_setting('work_mem'), current_setting('search_path'), current_user, "
                "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), "
                "(SELECT count(*) FROM pg_prepared_statements)"
            ),
            "probe",
            {},
        )
        assert check.ok, check.error
        _, timeout, work_mem, search_path, user, locks, prepared = check.rows.data[0]
        role = session[SESSION_KEY]
        assert timeout == f"{conf['STATEMENT_TIMEOUT_MS'] // 1000}s"
        assert work_mem == conf["WORK_MEM"]
        assert search_path == role
        assert user == role
        assert (locks, prepared) == (0, 0)


def _run_autocommit(run, *statements: str) -> None:
    with run.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for statement in statements:
            conn.execute(text(statement))


def test_pooled_connections_are_never_shared_between_sandboxes(make_sandbox):
    boxes = [make_sandbox() for _ in range(3)]
    seen: dict[int, str] = {}
    for _ in range(3):
        for box in boxes:
            with sandboxes.engine_for(box).connect() as conn:
                pid, user = conn.execute(text("SELECT pg_backend_pid(), current_user")).one()
            assert seen.setdefault(pid, user) == user == box.role


# --- the web layer --------------------------------------------------------------------------
def test_compare_without_csrf_is_403(drop_all_sandboxes):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/recipes/offset-pagination/compare", data={"rows": SMALL}).status_code == 403
    assert not Sandbox.objects.exists()


@pytest.mark.parametrize("origin", ["https://evil.example", "http://testserver.evil.example", "null"])
def test_a_foreign_origin_is_403_even_with_a_valid_token(origin, drop_all_sandboxes):
    client = Client(enforce_csrf_checks=True)
    response = _api_run(client, "offset-pagination", {"rows": SMALL}, Origin=origin)
    assert response.status_code == 403
    assert "Origin checking failed" in response.json()["error"]
    same = _api_run(client, "offset-pagination", {"rows": SMALL}, Origin="http://testserver")
    assert same.status_code == 200
    assert Sandbox.objects.count() == 1


def test_an_oversized_body_is_refused(drop_all_sandboxes):
    client = Client(enforce_csrf_checks=True)
    client.get("/api/recipes")
    token = client.cookies["csrftoken"].value
    padding = "x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    as_json = client.post(
        "/api/recipes/offset-pagination/run",
        data=json.dumps({"params": {"rows": SMALL}, "padding": padding}),
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    as_form = client.post(
        "/recipes/offset-pagination/run",
        data={"rows": SMALL, "padding": padding},
        headers={"X-CSRFToken": token},
    )
    for response in (as_json, as_form):
        assert 400 <= response.status_code < 500, response.status_code
    assert not Sandbox.objects.exists()


def test_results_containing_script_render_escaped():
    evil = "<script>alert('x')</script>"
    recipe = recipes.get("offset-pagination")
    result = RunResult(
        recipe=recipe.slug,
        variant="offset",
        params={"page": 1},
        ok=False,
        error=f"DataError: {evil}",
        rows=TableRows(columns=[evil], data=[[evil, 1]], total=1, truncated=False),
        statements=[Statement(sql=f"SELECT '{evil}'", parameters={"v": evil}, duration_ms=0.1, rowcount=1)],
        query_count=1,
        plan=Plan(json=[], text=evil),
        elapsed_ms=1.0,
        db_ms=0.5,
        notes=[evil],
        metrics={"m": evil},
        setup=[evil],
    )
    html = render_to_string(
        "recipe.html#results",
        {"recipe": recipe, "form": RunForm(recipe), "result": result, "problem": evil},
    )
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html


def test_a_string_parameter_with_script_comes_back_escaped(drop_all_sandboxes):
    candidates = [(slug, name) for slug, name in _str_params()]
    if not candidates:
        pytest.skip("no recipe with a string parameter is registered")
    evil = "<script>alert(1)</script>"
    client = Client(enforce_csrf_checks=True)
    client.get("/")
    shown = 0
    for slug, name in candidates:
        recipe = recipes.get(slug)
        small = {p.name: p.min for p in recipe.params if p.kind == "int" and p.min is not None}
        response = client.post(
            f"/recipes/{slug}/run",
            data={**small, name: evil},
            headers={"X-CSRFToken": client.cookies["csrftoken"].value, "HX-Request": "true"},
        )
        html = response.content.decode()
        assert "<script>alert" not in html, slug
        shown += "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert shown, "no recipe echoed the value back at all"


def test_a_session_hammering_run_gets_429_without_hurting_others(settings, drop_all_sandboxes):
    with_role_settings(settings, RUN_BURST=3, RUNS_PER_MINUTE=1)
    hammer, other = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    statuses = [_api_run(hammer, "offset-pagination", {"rows": SMALL}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    limited = _api_run(hammer, "offset-pagination", {"rows": SMALL})
    assert limited.json()["error"].startswith("Too many runs: this session may start 3 runs in a row")
    partial = hammer.post(
        "/recipes/offset-pagination/run",
        data={"rows": SMALL},
        headers={"X-CSRFToken": hammer.cookies["csrftoken"].value, "HX-Request": "true"},
    )
    assert partial.status_code == 429 and "Too many runs" in partial.content.decode()

    assert _api_run(other, "offset-pagination", {"rows": SMALL}).status_code == 200
    # The count lives in the app database, where every worker and instance sees it.
    bucket = RunAllowance.objects.get(key=hammer.session.session_key)
    assert bucket.allowed is False and bucket.tokens < 1


def test_the_run_allowance_refills_over_time(settings, transactional_db):
    with_role_settings(settings, RUN_BURST=2, RUNS_PER_MINUTE=600)  # one every 0.1 s

    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    assert limits.take_runs(store) is None
    assert limits.take_runs(store) is None
    assert limits.take_runs(store) is not None
    time.sleep(0.25)
    assert limits.take_runs(store) is None


def test_a_tampered_session_cookie_gets_a_new_sandbox_never_someone_elses(drop_all_sandboxes):
    victim = Client(enforce_csrf_checks=True)
    assert _api_run(victim, "offset-pagination", {"rows": SMALL}).status_code == 200
    victim_role = victim.session[SESSION_KEY]
    cookie = victim.cookies[django_settings.SESSION_COOKIE_NAME].value

    for forged in (cookie[:-1] + ("a" if cookie[-1] != "a" else "b"), "x" * 32, victim_role, ""):
        attacker = Client(enforce_csrf_checks=True)
        attacker.get("/api/recipes")
        attacker.cookies[django_settings.SESSION_COOKIE_NAME] = forged
        response = _api_run(attacker, "offset-pagination", {"rows": SMALL})
        assert response.status_code == 200
        assert attacker.session[SESSION_KEY] != victim_role
        assert attacker.cookies[django_settings.SESSION_COOKIE_NAME].value != cookie
    assert victim.session[SESSION_KEY] == victim_role
    assert Sandbox.objects.filter(role=victim_role).exists()
    again = _api_run(victim, "offset-pagination", {"rows": SMALL}).json()
    assert again["ok"] and not any("seeded" in line for line in again["setup"])


def test_error_messages_map_known_states():
    assert limits.explain_error("OperationalError: server closed the connection unexpectedly").startswith(
        "The connection to the database was lost"
    )
    assert limits.explain_error("AdminShutdown (SQLSTATE 57P01): terminating connection").startswith(
        "The connection to the database was lost"
    )
    plain = "UniqueViolation (SQLSTATE 23505): duplicate key value violates unique constraint"
    assert limits.explain_error(plain) == plain
    assert re.match(r"The statement was cancelled", limits.explain_error("QueryCanceled (SQLSTATE 57014): x"))
