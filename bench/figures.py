"""Run recipes' variants in a fresh sandbox and print the measured figures as a table.

    python -m bench.figures                         # every recipe, every variant, default sizes
    python -m bench.figures eager-loading authors=2000 books_per_author=50
    python -m bench.figures exists-count rows=1000000 match=10 --repeat 3

Each run prints queries, rows fetched, wall and database time (median of --repeat runs, after one
warm-up run that seeds the tables) and the recipe's own metrics.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe", nargs="?", help="recipe slug (default: all)")
    parser.add_argument("params", nargs="*", help="name=value parameter overrides")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    import django

    django.setup()
    import recipes
    from playground import sandbox
    from playground.running import runner
    from recipes.validation import InvalidParams, from_link

    chosen = [recipes.get(args.recipe)] if args.recipe else list(recipes.REGISTRY.values())
    if None in chosen:
        sys.exit(f"unknown recipe {args.recipe!r}")
    overrides = dict(item.split("=", 1) for item in args.params)
    box = sandbox.provision()
    try:
        engine = sandbox.engine_for(box)
        print(
            f"{'recipe':<20} {'variant':<26} {'ok':<3} {'queries':>7} {'fetched':>9} "
            f"{'wall ms':>9} {'db ms':>9}  metrics"
        )
        for recipe in chosen:
            try:
                params = recipe.validate(from_link(recipe, overrides), form=True).params
            except InvalidParams as exc:
                sys.exit(f"{recipe.slug}: {exc}")
            for variant in recipe.variants:
                runs = [
                    runner.run(recipe=recipe, variant=variant, params=params, engine=engine)
                    for _ in range(args.repeat + 1)
                ][1:]
                last = runs[-1]
                fetched = sum(s.rowcount or 0 for s in last.statements if s.kind == "query")
                wall = statistics.median(r.elapsed_ms for r in runs)
                db = statistics.median(r.db_ms for r in runs)
                metrics = ", ".join(f"{k}={v}" for k, v in last.metrics.items())
                print(
                    f"{recipe.slug:<20} {variant:<26} {'yes' if last.ok else 'no':<3} {last.query_count:>7} "
                    f"{fetched:>9,} {wall:>9.2f} {db:>9.2f}  {metrics}"[:220]
                )
    finally:
        sandbox.drop(box)


if __name__ == "__main__":
    main(sys.argv[1:])
