"""The main statement's duration_ms as shown / Planning + Execution Time of
EXPLAIN (ANALYZE, TIMING OFF) of the same statement right after; the median paired difference."""

from __future__ import annotations

import json
import statistics
from typing import Any

from bench.report import Figure, spread

TARGET_SHARE = 0.10
TARGET_MS = 0.5
"""The shown time may differ from Postgres' own by this share of it, or by this much (a fast
statement's time is mostly the client round trip)."""


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
            b = statistics.median(explained)
            # Paired: each run's shown time against its own EXPLAIN right after it, so that a
            # busier second on a shared machine moves both sides of a pair alike.
            diff = statistics.median([a - e for a, e in zip(shown, explained, strict=True)])
            figures.append(
                Figure(
                    name=f"honesty: {slug}/{variant}",
                    playground=spread(shown),
                    reference=spread(explained),
                    result=f"{diff:+.2f} ms ({diff / b:+.0%})",
                    target=f"within {TARGET_SHARE:.0%} or {TARGET_MS:g} ms",
                    met=abs(diff) <= max(TARGET_MS, TARGET_SHARE * b),
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
