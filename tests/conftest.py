"""Fixtures shared by the core tests: real sandboxes on the real (embedded or configured) server.

Sandbox roles are cluster-global, so tests give them their own prefix and every role carrying it
is dropped when the session starts (leftovers of an interrupted run) and when it ends.

On the embedded server the app's roles may not create databases (they need not, in use), so the
test databases are made by its superuser, owned by those roles, and dropped at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.test import Client
from psycopg import sql
from sqlalchemy import URL, Engine

import recipes
from playground import embedded
from playground import sandbox as sandboxes
from playground.models import Sandbox
from playground.running import runner
from playground.sandbox import reaper
from recipes.results import RunResult

TEST_ROLE_PREFIX = "sbxt_"
ROWS = 2000
"""Table size used by the tests: small enough to be fast, big enough for plans to differ."""


def connect_kwargs(url: URL, **overrides: Any) -> dict[str, Any]:
    """psycopg.connect() keyword arguments for a SQLAlchemy URL (Unix socket or TCP)."""
    kwargs: dict[str, Any] = {
        "host": url.query.get("host") or url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
    }
    kwargs.update(overrides)
    return {k: v for k, v in kwargs.items() if v is not None}


def superuser_url() -> URL:
    """The server's superuser on the maintenance database: the embedded server's own, else (an
    operator's server) the sandbox administrator, the most privileged role the tests know."""
    server = embedded.current()
    if server is None:
        return sandboxes.admin_url().set(database="postgres")
    return URL.create(
        "postgresql+psycopg",
        username=server.superuser,
        database="postgres",
        query={"host": server.socket_dir},
    )


def sandbox_superusers() -> list[URL]:
    """The superuser of every sandbox server the tests reach: `superuser_url()`, and each
    embedded sandbox-only server this process started (the PostgreSQL 16 one, once used)."""
    return [
        superuser_url(),
        *(
            URL.create(
                "postgresql+psycopg", username=s.superuser, database="postgres", query={"host": s.socket_dir}
            )
            for s in embedded.sandbox_servers()
        ),
    ]


def drop_test_roles() -> list[str]:
    """Drop every role carrying the test prefix, with its schema in the test sandbox database,
    on every sandbox server started."""
    return [role for url in sandbox_superusers() for role in _drop_test_roles(url)]


def _drop_test_roles(superuser: URL) -> list[str]:
    sandbox_db = sandboxes.admin_url().database
    assert sandbox_db.startswith("test_"), f"not a test sandbox database: {sandbox_db}"
    url = superuser.set(database=sandbox_db)
    with psycopg.connect(**connect_kwargs(url, dbname="postgres"), autocommit=True) as conn:
        roles = [
            name
            for (name,) in conn.execute(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) ORDER BY rolname",
                [TEST_ROLE_PREFIX],
            )
        ]
        has_db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [url.database]).fetchone()
    if not roles:
        return []
    for role in roles:
        sandboxes.forget_engine(role)
    dbname = url.database if has_db else "postgres"
    with psycopg.connect(**connect_kwargs(url, dbname=dbname), autocommit=True) as conn:
        for role in roles:
            ident = sql.Identifier(role)
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident))
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
            if has_db:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))
    return roles


@pytest.fixture(scope="session")
def django_db_keepdb(request) -> bool:
    """On the embedded server `django_db_modify_db_settings` makes the databases: Django keeps them."""
    return embedded.current() is not None or request.config.getvalue("reuse_db")


@pytest.fixture(scope="session")
def django_db_createdb(request) -> bool:
    return embedded.current() is None and request.config.getvalue("create_db")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> Iterator[None]:
    """On the embedded server: fresh test databases, made by the superuser and owned by the roles
    the app logs in as (they cannot create databases); dropped when the session ends."""
    server = embedded.current()
    if server is None:
        yield
        return
    from django.db import connection

    app_db = connection.creation._get_test_db_name()
    owners = {app_db: server.user, f"{app_db}_sandbox": server.sandbox_user}
    with psycopg.connect(**connect_kwargs(superuser_url()), autocommit=True) as conn:
        for name, owner in owners.items():
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            embedded.ensure_database(conn, name, owner)
        embedded.close_database(conn, app_db)
    yield
    sandboxes.dispose_engines()
    with psycopg.connect(**connect_kwargs(superuser_url()), autocommit=True) as conn:
        for name in owners:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    for url in sandbox_superusers()[1:]:  # the sandbox-only servers hold the sandbox database alone
        with psycopg.connect(**connect_kwargs(url), autocommit=True) as conn:
            name = sql.Identifier(f"{app_db}_sandbox")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


@pytest.fixture(scope="session", autouse=True)
def _test_role_prefix() -> Iterator[str]:
    original = settings.PLAYGROUND
    # No reaper loop in the test process: tests that want one start it themselves.
    settings.PLAYGROUND = {**original, "ROLE_PREFIX": TEST_ROLE_PREFIX, "REAP_EVERY_SECONDS": 0}
    yield TEST_ROLE_PREFIX
    settings.PLAYGROUND = original


@pytest.fixture(scope="session", autouse=True)
def _clean_test_roles(django_db_setup, _test_role_prefix) -> Iterator[None]:
    drop_test_roles()
    yield
    drop_test_roles()


@pytest.fixture(autouse=True)
def _no_reaper_loop_left() -> Iterator[None]:
    """A test that switched the reaper loop on (any request starts it) leaves none running: it
    would sleep out its interval and keep a later test's loop from starting."""
    yield
    reaper.stop_in_this_process()


@pytest.fixture
def make_sandbox(transactional_db) -> Iterator[Callable[[], Sandbox]]:
    """Provision sandboxes on demand; those still registered are dropped afterwards."""
    made: list[Sandbox] = []

    def make() -> Sandbox:
        sb = sandboxes.provision()
        made.append(sb)
        return sb

    yield make
    for sb in made:
        if Sandbox.objects.filter(pk=sb.pk).exists():
            sandboxes.drop(sb)


@pytest.fixture
def drop_sandboxes(transactional_db) -> Iterator[None]:
    """Every sandbox a test's sessions provisioned is dropped (schema, role, row) afterwards."""
    yield
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


@pytest.fixture
def client() -> Client:
    """A browser-like client: CSRF is enforced, as in production."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def sandbox(make_sandbox) -> Sandbox:
    return make_sandbox()


@pytest.fixture
def engine(sandbox) -> Engine:
    return sandboxes.engine_for(sandbox)


@pytest.fixture
def run_recipe() -> Callable[..., RunResult]:
    """run_recipe(engine, "offset-pagination", "offset", page=3): a real run, small table."""

    def run(engine: Engine, slug: str, variant: str, **params: Any) -> RunResult:
        recipe = recipes.get(slug)
        assert recipe is not None, slug
        if "rows" in recipe.defaults():
            params.setdefault("rows", ROWS)
        return runner.run(recipe=recipe, variant=variant, params=params, engine=engine)

    return run
