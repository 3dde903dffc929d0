"""Helpers of the security and fault tests: throw-away recipes, sessions, activity polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from django.contrib.sessions.backends.db import SessionStore
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import Sandbox
from playground.running.service import SESSION_KEY
from recipes.base import Recipe, Rows


def probe(*statements: str, returns: bool = True) -> Recipe:
    """A recipe whose one variant runs `statements` in one transaction; rows of the last one."""

    recipe = Recipe(slug="probe", title="Probe", section="Reading", summary="A test probe.", params=())

    @recipe.variant(slug="probe")
    def run_statements(run, p):
        with run.connect() as conn, conn.begin():
            result = None
            for statement in statements:
                result = conn.execute(text(statement))
            if returns and result is not None and result.returns_rows:
                return Rows(tuple(result.keys()), [tuple(r) for r in result])
        return None

    return recipe


def recipe_of(func: Callable[[Any, Any], Rows | None]) -> Recipe:
    """A recipe whose one variant is `func(run, params)`."""
    recipe = Recipe(slug="probe", title="Probe", section="Reading", summary="A test probe.", params=())
    recipe.variant(func, slug="probe")
    return recipe


def sandboxed_session() -> Iterator[SessionStore]:
    """A server-side session, as a browser would have; its sandbox is dropped afterwards.

    Test modules wrap it in a `session` fixture (with `transactional_db`)."""
    store = SessionStore()
    store.create()
    yield store
    for box in Sandbox.objects.filter(role=store.get(SESSION_KEY)):
        sandboxes.drop(box)


def activity(role: str, like: str = "%") -> list[tuple[int, str]]:
    """(pid, state) of the role's backends whose query matches `like`."""
    with sandboxes.admin_engine().connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT pid, state FROM pg_stat_activity WHERE usename = :r AND query LIKE :q "
                    "AND pid <> pg_backend_pid()"
                ),
                {"r": role, "q": like},
            )
        ]


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> float:
    """Poll until `predicate()` is true; return the seconds it took (fail after `timeout`)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started
