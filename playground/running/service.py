"""What a request asks of the playground, independent of how it is rendered."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import recipes
from playground import sandbox
from playground.conf import setting
from playground.models import Run, Sandbox
from playground.running import apart, limits, runner
from playground.running.deadline import Watch
from playground.running.sweeps import SweepSpec, sweep_lines
from playground.sandbox.engines import SANDBOX_MAX_OVERFLOW
from recipes.base import Cost, Recipe
from recipes.results import RunResult, result_from_json
from recipes.validation import InvalidParams

SESSION_KEY = "sandbox"


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
    client_gone: Callable[[], bool] | None = None,
) -> RunResult:
    """Run in this session's sandbox and keep the run in the session's history (unless `keep`
    is False: a warm-up).

    The run is bounded: a deadline, a statement count, and `client_gone` (a check that the
    request's client left, see `deadline.client_of`). A heavy one waits its turn among the few,
    and runs in a process of its own (`playground.running.apart`).
    """
    box = sandbox_for(session)
    sandbox.check_quota(box)
    heavy = is_heavy(recipe.cost_of(variant, params))
    with sandbox.run_slot(heavy=heavy):
        if heavy and recipes.get(recipe.slug) is recipe:  # the child finds it by its slug
            result = _run_apart(box, recipe, variant, params, client_gone)
        else:
            watch = Watch(
                setting("RUN_DEADLINE_SECONDS"),
                client_gone=client_gone,
                max_statements=setting("MAX_STATEMENTS_PER_RUN"),
            )
            result = runner.run(
                recipe=recipe,
                variant=variant,
                params=params,
                engine=sandbox.engine_for(box),
                max_rows=setting("MAX_ROWS_SHOWN"),
                watch=watch,
            )
    if not result.ok:
        result = replace(result, error=limits.explain_error(result.error))
    result = result.trimmed(setting("STATEMENTS_SHOWN"), setting("RESULT_MAX_KB") * 1024)
    if not keep:
        return result
    Run.objects.create(
        sandbox=box,
        recipe=recipe.slug,
        variant=variant,
        params=result.params,
        ok=result.ok,
        query_count=result.query_count,
        elapsed_ms=result.elapsed_ms,
        db_ms=result.db_ms,
        rows_read=result.figures.rows_read,
        result=result.trimmed(setting("STORED_STATEMENTS"), setting("STORED_RESULT_MAX_KB") * 1024).to_json(),
        sweep=sweep,
    )
    return result


def _run_apart(
    box: Sandbox, recipe: Recipe, variant: str, params: dict[str, Any], client_gone: Callable[[], bool] | None
) -> RunResult:
    """A heavy run in a process of its own (see `playground.running.apart`), the same limits."""
    job = apart.Job(
        recipe=recipe.slug,
        variant=variant,
        params=params,
        url=sandbox.engine_for(box).url.render_as_string(hide_password=False),
        pool_size=setting("SANDBOX_POOL_SIZE"),
        max_overflow=SANDBOX_MAX_OVERFLOW,
        max_rows=setting("MAX_ROWS_SHOWN"),
        deadline=setting("RUN_DEADLINE_SECONDS"),
        max_statements=setting("MAX_STATEMENTS_PER_RUN"),
        shown=(setting("STATEMENTS_SHOWN"), setting("RESULT_MAX_KB") * 1024),
    )
    return result_from_json(apart.run_apart(job, client_gone=client_gone))


def is_heavy(cost: Cost) -> bool:
    """Whether a run of this declared cost is one of the heavy ones, which take turns."""
    return cost.statements > setting("HEAVY_RUN_STATEMENTS") or cost.rows > setting("HEAVY_RUN_ROWS")


def sweep_step(
    session,
    recipe: Recipe,
    params: Mapping[str, Any],
    spec: SweepSpec,
    sweep: uuid.UUID,
    step: int,
    *,
    client_gone: Callable[[], bool] | None = None,
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
        run_recipe(
            session, line_recipe, chosen.variant, dict(chosen.params), sweep=sweep, client_gone=client_gone
        )
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


def compare(
    session, recipe: Recipe, params: Mapping[str, Any], *, client_gone: Callable[[], bool] | None = None
) -> list[RunResult]:
    """Every variant of `recipe` with the same parameters, naive first.

    One unrecorded run goes first: otherwise the first variant alone would pay for what is cold
    (the seed, a new engine's compiled-statement cache, the pool's first connections).
    """
    run_recipe(session, recipe, recipe.default_variant, params, keep=False, client_gone=client_gone)
    return [run_recipe(session, recipe, slug, params, client_gone=client_gone) for slug in recipe.variants]


def reset_sandbox(session) -> bool:
    """Empty this session's sandbox; False when it has none yet."""
    role = session.get(SESSION_KEY)
    box = Sandbox.objects.filter(role=role).first() if role else None
    if box is None:
        return False
    sandbox.reset(box)
    sandbox.touch(box)
    return True
