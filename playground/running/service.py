"""What a request asks of the playground, independent of how it is rendered."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import recipes
from playground import sandbox
from playground.conf import setting
from playground.models import Run, Sandbox
from playground.running import limits, runner, sweeps
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
    box, (result,) = _runs(session, recipe, variant, params, repeats=1)
    return _keep(box, recipe, variant, result, sweep) if keep else result


def run_point(
    session, recipe: Recipe, variant: str, params: dict[str, Any], *, sweep: uuid.UUID, y: str
) -> RunResult:
    """One point of a sweep's line, kept in the history: for a time, the middle of
    `sweeps.REPEATS` runs by that time; for a count, which is the same on every run, one run."""
    repeats = sweeps.REPEATS if y in sweeps.TIMES else 1
    box, results = _runs(session, recipe, variant, params, repeats=repeats)
    ordered = sorted(results, key=lambda r: figure(r, y) or 0.0)
    failed = [r for r in results if not r.ok]
    result = failed[0] if failed else ordered[len(ordered) // 2]
    return _keep(box, recipe, variant, result, sweep)


def figure(result: RunResult, name: str) -> float | None:
    """One of `SWEEP_FIGURES` of a run, as its stored `Run` holds it."""
    return result.figures.rows_read if name == "rows_read" else getattr(result, name)


def _runs(
    session, recipe: Recipe, variant: str, params: dict[str, Any], *, repeats: int
) -> tuple[Sandbox, list[RunResult]]:
    """`repeats` runs back to back in one run slot, stopping at the first that fails."""
    box = sandbox_for(session)
    sandbox.check_quota(box)
    results: list[RunResult] = []
    with sandbox.run_slot():
        engine = sandbox.engine_for(box)
        while len(results) < repeats and (not results or results[-1].ok):
            results.append(
                runner.run(
                    recipe=recipe,
                    variant=variant,
                    params=params,
                    engine=engine,
                    max_rows=setting("MAX_ROWS_SHOWN"),
                )
            )
    return box, [r if r.ok else replace(r, error=limits.explain_error(r.error)) for r in results]


def _keep(
    box: Sandbox, recipe: Recipe, variant: str, result: RunResult, sweep: uuid.UUID | None
) -> RunResult:
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
        run_point(session, line_recipe, chosen.variant, dict(chosen.params), sweep=sweep, y=spec.y)
    return refused


@dataclass(frozen=True)
class SweepPoints:
    """What a sweep has drawn so far."""

    lines: dict[str, list[tuple[float, float]]]
    """"recipe · variant" → (x, y) points, in the order they ran."""
    failed: list[str]
    """Points left out because their run failed when it was not meant to (a timeout, say)."""


def sweep_points(session, sweep: uuid.UUID, spec: SweepSpec) -> SweepPoints:
    """The sweep's runs so far as (x, y) points, one list per recipe and variant.

    A run that failed on purpose (raiseload…) is drawn like any other; one that failed otherwise
    is left out of its line, since its figures measure the failure, and listed instead.
    """
    runs = Run.objects.filter(sandbox__role=session.get(SESSION_KEY), sweep=sweep).defer("result")
    lines: dict[str, list[tuple[float, float]]] = {}
    failed = []
    for r in runs.order_by("created_at"):
        if spec.param not in r.params:
            continue
        line, x, y = f"{r.recipe} · {r.variant}", r.params[spec.param], getattr(r, spec.y)
        if not r.ok and not _fails_on_purpose(r.recipe, r.variant):
            failed.append(f"{line} at {spec.param} = {x:,} failed: {_error_of(r)}")
        elif y is not None:
            lines.setdefault(line, []).append((x, y))
    return SweepPoints(lines=lines, failed=failed)


def _error_of(run: Run) -> str:
    return Run.objects.filter(pk=run.pk).values_list("result__error", flat=True).first() or "no message"


def _fails_on_purpose(slug: str, variant: str) -> bool:
    recipe = recipes.get(slug)
    found = recipe.variants.get(variant) if recipe else None
    return bool(found and found.fails_on_purpose)


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
