"""The cookbook's recipes, registered in the cookbook's order."""

from __future__ import annotations

from importlib import import_module

from recipes.base import Recipe

MODULES = (
    "recipes.modelling.timestamp_mixin",
    "recipes.modelling.uuid_keys",
    "recipes.reading.offset_pagination",
    "recipes.reading.keyset_pagination",
    "recipes.reading.eager_loading",
    "recipes.reading.exists_count",
    "recipes.writing.upsert",
    "recipes.writing.soft_delete",
    "recipes.writing.unit_of_work",
    "recipes.writing.bulk_insert",
    "recipes.performance.full_text_search",
    "recipes.performance.connection_pool",
    "recipes.performance.indexes",
    "recipes.performance.prepared_statements",
)


def _load() -> dict[str, Recipe]:
    registry: dict[str, Recipe] = {}
    for name in MODULES:
        recipe = import_module(name).recipe
        if recipe.slug in registry:
            raise ValueError(f"duplicate recipe slug {recipe.slug!r} in {name}")
        registry[recipe.slug] = recipe
    return registry


REGISTRY = _load()


def get(slug: str) -> Recipe | None:
    return REGISTRY.get(slug)


def by_section() -> list[tuple[str, list[Recipe]]]:
    from recipes.base import SECTIONS

    return [(s, [r for r in REGISTRY.values() if r.section == s]) for s in SECTIONS]
