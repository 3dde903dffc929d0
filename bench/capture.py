"""A variant's time inside `runner.run` (listeners on, capture and watch active) / the same variant
function on a second engine of the same sandbox without listeners; interleaved, same process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench.report import Figure, spread

TARGET_RATIO = 1.05
"""What capturing every statement (and the run's watch counting them) may add to a variant."""


def measure(repeat: int) -> list[Figure]:
    """Capture overhead, per case: `repeat` runs with capture and without, interleaved."""
    from sqlalchemy import create_engine

    import recipes
    from playground import sandbox
    from playground.conf import setting
    from playground.running import runner
    from playground.running.deadline import Watch
    from playground.running.engine import pooled_with_reset
    from playground.sandbox import engines
    from recipes.base import Params
    from recipes.context import Run

    box = sandbox.provision()
    captured = sandbox.engine_for(box)
    bare = create_engine(
        captured.url,
        pool_size=setting("SANDBOX_POOL_SIZE"),
        max_overflow=engines.SANDBOX_MAX_OVERFLOW,
        pool_reset_on_return=None,
        connect_args={"prepare_threshold": None},
    )
    pooled_with_reset(bare)  # the same pool behaviour as the captured engine, no listeners else
    cases = [
        ("eager-loading", "lazy", {"authors": 50}, "lazy N+1, 50 authors (51 queries)"),
        ("offset-pagination", "offset", {"size": 20}, "20-row page + count (2 queries)"),
    ]
    figures = []
    try:
        for slug, variant, params, label in cases:
            recipe = recipes.get(slug)
            p = Params({**recipe.defaults(), **params})
            func = recipe.variants[variant].func

            def with_capture(recipe=recipe, variant=variant, params=params) -> float:
                # As a request runs it: the run's watch counts and checks every statement too.
                watch = Watch(
                    setting("RUN_DEADLINE_SECONDS"), max_statements=setting("MAX_STATEMENTS_PER_RUN")
                )
                result = runner.run(
                    recipe=recipe, variant=variant, params=params, engine=captured, watch=watch
                )
                assert result.ok, result.error
                return result.elapsed_ms

            def without_capture(recipe=recipe, p=p, func=func) -> float:
                setup = runner.prepare(recipe, p, bare)
                context = Run(bare, setup.prepared)
                started = time.perf_counter()
                func(context, p)
                elapsed = (time.perf_counter() - started) * 1000
                context.close()
                return elapsed

            on, off = interleave(with_capture, without_capture, repeat, warmup=3)
            ratio = statistics.median(on) / statistics.median(off)
            paired = [a / b for a, b in zip(on, off, strict=True)]
            figures.append(
                Figure(
                    name=f"capture: {slug}/{variant}",
                    playground=spread(on),
                    reference=spread(off),
                    result=f"ratio {ratio:.3f} (paired {spread(paired, 'x')})",
                    target=f"ratio ≤ {TARGET_RATIO:.2f}",
                    met=ratio <= TARGET_RATIO,
                    details=[f"{label}; {repeat} interleaved repetitions, same process and sandbox"],
                )
            )
    finally:
        bare.dispose()
        sandbox.drop(box)
    return figures


def interleave(a: Callable[[], float], b: Callable[[], float], repeat: int, warmup: int):
    """Run `a` and `b` alternately (order flipped every time), after warm-up runs of each."""
    for _ in range(warmup):
        a()
        b()
    first, second = [], []
    for i in range(repeat):
        if i % 2:
            second.append(b())
            first.append(a())
        else:
            first.append(a())
            second.append(b())
    return first, second
