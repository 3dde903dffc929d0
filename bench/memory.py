"""The web worker's RSS after 1,000 runs across every recipe and variant (small sizes,
the engine cache plus two sessions) / the same worker's RSS after its first run."""

from __future__ import annotations

import time
from typing import Any

from bench.environment import ROLE_PREFIX
from bench.report import Figure
from bench.server import Gunicorn, post_run

SMALL = {"rows": "min", "hold_ms": 10}
"""Parameter overrides of the memory figure's runs: the smallest tables, short pool holds."""
GROWTH_MB = 10
"""How much the worker may grow from its first run to its last."""


def measure(site: Gunicorn, runs: int) -> list[Figure]:
    """The worker's RSS growth over `runs` runs, every recipe and variant in turn."""
    import recipes
    from playground import sandbox
    from playground.conf import setting

    plan = [
        (recipe.slug, variant, small_params(recipe))
        for recipe in recipes.REGISTRY.values()
        for variant in recipe.variants
    ]
    browsers = [site.browser() for _ in range(setting("SANDBOX_ENGINE_CACHE") + 2)]
    (worker,) = site.workers()
    post_run(browsers[0], *plan[0])
    first = worker.memory_info().rss
    trend = []
    started = time.monotonic()
    for i in range(runs):
        slug, variant, params = plan[i % len(plan)]
        post_run(browsers[(i // len(plan)) % len(browsers)], slug, variant, params)
        if (i + 1) % max(1, runs // 4) == 0:
            trend.append(f"{i + 1}: {(worker.memory_info().rss - first) / 2**20:+.1f} MB")
    last = worker.memory_info().rss
    wall = time.monotonic() - started
    growth = (last - first) / 2**20
    with sandbox.admin_engine().connect() as conn:
        from sqlalchemy import text

        held = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE starts_with(usename, :p)"), {"p": ROLE_PREFIX}
        ).scalar()
    bound = setting("SANDBOX_ENGINE_CACHE") * setting("SANDBOX_POOL_SIZE")
    return [
        Figure(
            name=f"memory: worker RSS after {runs:,} runs",
            playground=f"{last / 2**20:.1f} MB",
            reference=f"{first / 2**20:.1f} MB",
            result=f"growth {growth:+.1f} MB",
            target=f"growth ≤ {GROWTH_MB:g} MB",
            met=growth <= GROWTH_MB,
            details=[
                f"{len(plan)} recipe/variant pairs in turn, small sizes, {len(browsers)} sessions "
                f"(engine cache {setting('SANDBOX_ENGINE_CACHE')}); {runs / wall:.0f} runs/s",
                "growth along the way: " + ", ".join(trend),
                f"sandbox connections still open afterwards: {held} (pooled, at most {bound})",
            ],
        )
    ]


def small_params(recipe) -> dict[str, Any]:
    """`recipe`'s parameters overridden by SMALL; the others keep their defaults."""
    params = {}
    for p in recipe.params:
        wanted = SMALL.get(p.name)
        if wanted == "min":
            params[p.name] = int(p.min)
        elif wanted is not None:
            params[p.name] = wanted
    return params
