"""The main statement's duration_ms as shown / Planning + Execution Time of
EXPLAIN (ANALYZE, TIMING OFF) of the same statement."""

from __future__ import annotations

import json
import statistics
from typing import Any

from bench.report import Figure, spread


def measure(repeat: int) -> list[Figure]:
    """Shown durations against EXPLAIN's own times, per case, after two seeding runs."""
    import recipes
    from playground import sandbox
    from playground.running import runner

    box = sandbox.provision()
    engine = sandbox.engine_for(box)
    cases = [
        ("keyset-pagination", "keyset", {"page": 1}, "keyset page 1 (index seek)"),
        ("offset-pagination", "offset", {"page": 2000}, "OFFSET 39,980 (reads and drops rows)"),
        ("exists-count", "count", {}, "COUNT(*) over 100,000 users"),
    ]
    figures = []
    try:
        for slug, variant, params, label in cases:
            recipe = recipes.get(slug)
            shown, explained, timed = [], [], []
            for i in range(repeat + 2):
                result = runner.run(recipe=recipe, variant=variant, params=params, engine=engine)
                assert result.ok and result.plan, result.error
                main = next(s for s in result.statements if s.main)
                top = result.plan.json[0]
                untimed = explain_untimed(engine, main.sql, main.parameters)
                if i >= 2:  # the first runs seed and warm the cache
                    shown.append(main.duration_ms)
                    explained.append(untimed["Planning Time"] + untimed["Execution Time"])
                    timed.append(top["Planning Time"] + top["Execution Time"])
            a, b = statistics.median(shown), statistics.median(explained)
            diff = a - b
            figures.append(
                Figure(
                    name=f"honesty: {slug}/{variant}",
                    playground=spread(shown),
                    reference=spread(explained),
                    result=f"{diff:+.2f} ms ({diff / b:+.0%})",
                    target="within 20 % or 1 ms",
                    met=abs(diff) <= max(1.0, 0.2 * b),
                    details=[
                        f"{label}; shown = duration_ms of the main statement, reference = Planning + "
                        "Execution Time of EXPLAIN (ANALYZE, TIMING OFF) of that statement after each run",
                        f"the run's own EXPLAIN (ANALYZE, BUFFERS), per-node timing on: {spread(timed)}",
                    ],
                )
            )
    finally:
        sandbox.drop(box)
    return figures


def explain_untimed(engine, statement: str, parameters: Any) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, TIMING OFF): Postgres' own time for the statement without the cost of
    reading the clock around every row of every plan node. Rolled back; nothing captured."""
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        try:
            with dbapi.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + statement, parameters)
                plan = cursor.fetchone()[0]
        finally:
            dbapi.rollback()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]
