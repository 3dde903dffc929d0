"""`POST /api/recipes/<slug>/run` on gunicorn, one warm session, client wall time / the
statements that run sent (its queries and both EXPLAINs) replayed with psycopg as the sandbox
role on a warm connection."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.environment import role_connection
from bench.report import Figure, spread
from bench.server import Gunicorn, post_run, session_role

TARGET_MS = 6.0
"""What the HTTP path may add to a warm run, at the median: session, sandbox, quota, setup
checks, capture, serialization and the stored run together."""


def measure(site: Gunicorn, repeat: int) -> list[Figure]:
    """The HTTP path's overhead, per case: `repeat` warm runs, each replayed straight after."""
    cases = [
        ("keyset-pagination", "keyset", {}),
        ("offset-pagination", "offset", {}),
        ("exists-count", "exists", {}),
    ]
    browser = site.browser()
    figures = []
    post_run(browser, *cases[0])  # provisions the session's sandbox and seeds it
    conn = role_connection(session_role(browser))
    try:
        for slug, variant, params in cases:
            for _ in range(5):
                _, result = post_run(browser, slug, variant, params)
                replay(conn, result["statements"])
            http, bare, overhead = [], [], []
            for _ in range(repeat):
                elapsed, result = post_run(browser, slug, variant, params)
                assert result["ok"], result["error"]
                direct = replay(conn, result["statements"])
                http.append(elapsed)
                bare.append(direct)
                overhead.append(elapsed - direct)
            sent = sum(1 for s in result["statements"] if s["kind"] in ("query", "explain"))
            p50 = statistics.median(overhead)
            figures.append(
                Figure(
                    name=f"http: {slug}/{variant}",
                    playground=spread(http),
                    reference=spread(bare),
                    result=f"overhead {spread(overhead)}",
                    target=f"overhead ≤ {TARGET_MS:g} ms p50",
                    met=p50 <= TARGET_MS,
                    details=[f"{sent} statements replayed (queries + EXPLAIN JSON + EXPLAIN text)"],
                )
            )
    finally:
        conn.close()
    return figures


def replay(conn, statements: list[dict[str, Any]]) -> float:
    """Send what a run sent, straight through psycopg: the variant's statements in one
    transaction, then each EXPLAIN in a transaction rolled back. Returns wall ms."""
    started = time.perf_counter()
    with conn.cursor() as cursor:
        for s in statements:
            if s["kind"] == "query":
                cursor.execute(s["sql"], s["parameters"])
                if cursor.description:
                    cursor.fetchall()
        conn.commit()
        for s in statements:
            if s["kind"] == "explain":
                cursor.execute(s["sql"], s["parameters"])
                cursor.fetchall()
                conn.rollback()
    return (time.perf_counter() - started) * 1000
