"""System checks that refuse a recipe module breaking the recipe contract (docs/adding-a-recipe.md).

The rules live in `recipes.contract`, which knows nothing of Django; this module only reports
them, so `manage.py check`, `runserver` and `migrate` stop on a broken recipe before anyone
opens its page. Ids are `playground.E001`…; the contract module lists what each one means.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.core import checks

import recipes
from playground.conf import setting
from recipes import contract, learning, tracks
from recipes.base import Recipe


def as_errors(problems: Iterable[contract.Problem]) -> list[checks.CheckMessage]:
    return [
        checks.Error(p.message, hint=p.hint or None, obj=p.obj, id=f"playground.{p.code}") for p in problems
    ]


def recipe_errors(recipe: Recipe, module: str) -> list[checks.CheckMessage]:
    """The errors one recipe (defined in the module named `module`) would raise."""
    return as_errors(contract.recipe_problems(recipe, module))


@checks.register("recipes")
def recipe_contract(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every registered recipe, and every module file of the section folders."""
    return as_errors(contract.problems())


@checks.register("recipes")
def recipe_learning(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every question and challenge declared beside a recipe names real variants, parameters and figures."""
    return [
        checks.Error(problem, obj=recipe.slug, id="playground.L001")
        for recipe in recipes.REGISTRY.values()
        for problem in learning.problems(recipe)
    ]


@checks.register("tracks")
def track_files(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every file in the tracks folder reads as a track; a refused one is named with its line."""
    hint = "How to write a track: docs/tracks.md."
    return [
        checks.Error(p.located, hint=hint, obj=str(p.file), id="playground.T001")
        for p in tracks.load(Path(setting("TRACKS_DIR")))[1]
    ]
