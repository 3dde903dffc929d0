"""Runs side by side: every variant of a recipe on one version, or one variant on every version.

Each run is an ordinary one of `playground.running.service` (kept in the session's history),
after an unrecorded warm-up so that the first does not pay alone for what is cold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from playground import sandbox
from playground.running.service import needs_version, run_recipe
from recipes.base import Recipe
from recipes.results import RunResult


def compare(
    session,
    recipe: Recipe,
    params: Mapping[str, Any],
    *,
    client_gone: Callable[[], bool] | None = None,
    version: int | None = None,
) -> list[RunResult]:
    """Every variant of `recipe` the version runs (`Variant.needs_version`) with the same
    parameters, naive first.

    One unrecorded run goes first: otherwise the first variant alone would pay for what is cold
    (the seed, a new engine's compiled-statement cache, the pool's first connections).
    """
    major = version or sandbox.default_version()
    slugs = [slug for slug, v in recipe.variants.items() if v.refusal_on(major) is None]
    on = {"client_gone": client_gone, "version": version}
    run_recipe(session, recipe, slugs[0], params, keep=False, **on)
    return [run_recipe(session, recipe, slug, params, **on) for slug in slugs]


def compare_versions(
    session,
    recipe: Recipe,
    variant: str,
    params: Mapping[str, Any],
    *,
    client_gone: Callable[[], bool] | None = None,
) -> list[RunResult]:
    """The same variant and parameters on every version offered, oldest first, each in this
    session's sandbox of that version and kept in its history.

    Refused as a whole (before anything runs) when a version cannot run the variant. Each
    version gets an unrecorded warm-up run first, so that neither pays alone for a cold sandbox.
    """
    offered = sandbox.versions()
    for version in offered:
        needs_version(recipe, variant, version)
    results = []
    for version in offered:
        on = {"client_gone": client_gone, "version": version}
        run_recipe(session, recipe, variant, dict(params), keep=False, **on)
        results.append(run_recipe(session, recipe, variant, dict(params), **on))
    return results
