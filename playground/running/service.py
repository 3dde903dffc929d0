"""What a request asks of the playground, independent of how it is rendered."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from playground import sandbox
from playground.conf import setting
from playground.models import Run, Sandbox
from playground.running import limits, runner
from playground.running.sweeps import SweepSpec, sweep_lines
from recipes.base import Recipe
from recipes.results import RunResult, stored_as
from recipes.validation import InvalidParams

SESSION_KEY = "sandbox"
STORED_STATEMENTS = 300


def sandbox_for(session) -> Sandbox:
    """This browser session's sandbox, marked as in use, created on first use.

    A sandbox a reaper dropped meanwhile is never used: claiming it finds no row (the reaper
    held it locked while dropping), so a new one is made.
    """
    role = session.get(SESSION_KEY)
    found = sandbox.claim(role) if role else None
    if found is None:
        found = sandbox.provision()
        session[SESSION_KEY] = found.role
    return found


def run_recipe(
    session,
    recipe: Recipe,
    variant: str,
    params: dict[str, Any],
    *,
    sweep: uuid.UUID | None = None,
    keep: bool = True,
) -> RunResult:
    """Run in this session's sandbox and keep the run in the session's history (unless `keep`
    is False: a warm-up)."""
    box = sandbox_for(session)
    sandbox.check_quota(box)
    with sandbox.run_slot():
        result = runner.run(
            recipe=recipe,
            variant=variant,
            params=params,
            engine=sandbox.engine_for(box),
            max_rows=setting("MAX_ROWS_SHOWN"),
        )
    if not result.ok:
        result = replace(result, error=limits.explain_error(result.error))
    if not keep:
        return result
    stored = Run.objects.create(
        sandbox=box,
        recipe=recipe.slug,
        variant=variant,
        params=result.params,
        ok=result.ok,
        query_count=result.query_count,
        elapsed_ms=result.elapsed_ms,
        db_ms=result.db_ms,
        rows_read=result.figures.rows_read,
        result=_for_storage(result),
        sweep=sweep,
    )
    return stored_as(result, stored.pk)


def _for_storage(result: RunResult) -> dict[str, Any]:
    """The result as JSON, with a long statement list cut (a lazy load can send thousands)."""
    data = dict(result.to_json())  # a copy: the view sends the original
    statements = data["statements"]
    if len(statements) > STORED_STATEMENTS:
        data["statements"] = statements[:STORED_STATEMENTS]
        data["notes"] = [
            *data["notes"],
            f"Only the first {STORED_STATEMENTS} of {len(statements)} statements were kept.",
        ]
    return data


def sweep_step(
    session, recipe: Recipe, params: Mapping[str, Any], spec: SweepSpec, sweep: uuid.UUID, step: int
) -> list[str]:
    """Run every line at the sweep's `step`-th value; return messages for points refused."""
    x = spec.values[step]
    refused = []
    for line_recipe, variant in sweep_lines(recipe, spec):
        shared = {k: v for k, v in params.items() if k in line_recipe.defaults()}
        try:
            chosen = line_recipe.validate({**shared, spec.param: x, "variant": variant})
        except InvalidParams as exc:
            label = line_recipe.param(spec.param).label or spec.param
            problems = " ".join(m for messages in exc.errors.values() for m in messages)
            refused.append(f"{line_recipe.title} · {variant} at {label} = {x:,}: {problems}")
            continue
        run_recipe(session, line_recipe, chosen.variant, dict(chosen.params), sweep=sweep)
    return refused


def sweep_points(session, sweep: uuid.UUID, spec: SweepSpec) -> dict[str, list[tuple[float, float]]]:
    """The sweep's runs so far as (x, y) points, one list per recipe and variant."""
    runs = Run.objects.filter(sandbox__role=session.get(SESSION_KEY), sweep=sweep).defer("result")
    data: dict[str, list[tuple[float, float]]] = {}
    for r in runs.order_by("created_at"):
        y = getattr(r, spec.y)
        if y is None or spec.param not in r.params:
            continue
        data.setdefault(f"{r.recipe} · {r.variant}", []).append((r.params[spec.param], y))
    return data


def history(session, limit: int = 20) -> list[Run]:
    """This session's latest runs, newest first."""
    role = session.get(SESSION_KEY)
    if not role:
        return []
    return list(Run.objects.filter(sandbox__role=role).defer("result")[:limit])


def stored_run(session, run_id: int) -> Run | None:
    """One of this session's runs (never another session's)."""
    role = session.get(SESSION_KEY)
    if not role:
        return None
    return Run.objects.filter(sandbox__role=role, pk=run_id).first()


def compare(session, recipe: Recipe, params: Mapping[str, Any]) -> list[RunResult]:
    """Every variant of `recipe` with the same parameters, naive first.

    One unrecorded run goes first: otherwise the first variant alone would pay for what is cold
    (the seed, a new engine's compiled-statement cache, the pool's first connections).
    """
    run_recipe(session, recipe, recipe.default_variant, params, keep=False)
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
