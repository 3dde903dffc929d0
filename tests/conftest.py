"""Fixtures shared by the core tests: real sandboxes on the real (embedded or configured) server.

Sandbox roles are cluster-global, so tests give them their own prefix and every role carrying it
is dropped when the session starts (leftovers of an interrupted run) and when it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from psycopg import sql
from sqlalchemy import URL, Engine

import recipes
from playground import sandbox as sandboxes
from playground.models import Sandbox
from playground.running import runner
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


def drop_test_roles() -> list[str]:
    """Drop every role carrying the test prefix, with its schema in the test sandbox database."""
    url = sandboxes.admin_url()
    assert url.database.startswith("test_"), f"not a test sandbox database: {url.database}"
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


@pytest.fixture(scope="session", autouse=True)
def _test_role_prefix() -> Iterator[str]:
    original = settings.PLAYGROUND
    settings.PLAYGROUND = {**original, "ROLE_PREFIX": TEST_ROLE_PREFIX}
    yield TEST_ROLE_PREFIX
    settings.PLAYGROUND = original


@pytest.fixture(scope="session", autouse=True)
def _clean_test_roles(django_db_setup, _test_role_prefix) -> Iterator[None]:
    drop_test_roles()
    yield
    drop_test_roles()


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
