"""What a request asks of the playground, independent of how it is rendered."""

from __future__ import annotations

from typing import Any

from playground import runner, sandbox
from playground.models import Run, Sandbox
from recipes.base import Recipe
from recipes.results import RunResult

SESSION_KEY = "sandbox"


def sandbox_for(session) -> Sandbox:
    """This browser session's sandbox, created on first use."""
    role = session.get(SESSION_KEY)
    found = Sandbox.objects.filter(role=role).first() if role else None
    if found is None:
        found = sandbox.provision()
        session[SESSION_KEY] = found.role
    return found


def run_recipe(session, recipe: Recipe, variant: str, params: dict[str, Any]) -> RunResult:
    from django.conf import settings

    box = sandbox_for(session)
    sandbox.touch(box)
    result = runner.run(
        recipe=recipe,
        variant=variant,
        params=params,
        engine=sandbox.engine_for(box),
        max_rows=settings.PLAYGROUND["MAX_ROWS_SHOWN"],
    )
    Run.objects.create(
        sandbox=box,
        recipe=recipe.slug,
        variant=variant,
        params=result.params,
        ok=result.ok,
        query_count=result.query_count,
        elapsed_ms=result.elapsed_ms,
        db_ms=result.db_ms,
    )
    return result


def compare(session, recipe: Recipe, params: dict[str, Any]) -> list[RunResult]:
    """Every variant of `recipe` with the same parameters, naive first."""
    return [run_recipe(session, recipe, slug, params) for slug in recipe.variants]


def reset_sandbox(session) -> bool:
    """Empty this session's sandbox; False when it has none yet."""
    role = session.get(SESSION_KEY)
    box = Sandbox.objects.filter(role=role).first() if role else None
    if box is None:
        return False
    sandbox.reset(box)
    sandbox.touch(box)
    return True
