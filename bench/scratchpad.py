"""`POST /sql/run` of one SELECT on gunicorn, one warm session, client wall time / the statements
that run sent (the SELECT and its EXPLAINs) replayed with psycopg as the sandbox role on a warm
connection: what the scratchpad adds to a statement typed by hand."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from bench.environment import role_connection
from bench.http_path import TARGET_MS, replay
from bench.report import Figure, spread
from bench.server import Gunicorn, post_run, session_role

SQL = "SELECT id, title, created_at FROM documents ORDER BY created_at DESC, id DESC LIMIT 20 OFFSET 100"
"""A page of the documents the pagination recipes seed, as someone would try it by hand."""


def measure(site: Gunicorn, repeat: int) -> list[Figure]:
    """The scratchpad's overhead on one statement: `repeat` warm runs, each replayed straight after."""
    browser = site.browser()
    post_run(browser, "offset-pagination", "offset", {"rows": 10_000})  # the sandbox and its table
    conn = role_connection(session_role(browser))
    scratch, bare, overhead = [], [], []
    try:
        for i in range(repeat + 5):
            elapsed, result = post_sql(browser, SQL)
            assert result["ok"], result["error"]
            direct = replay(conn, result["statements"])
            if i >= 5:  # warm-up
                scratch.append(elapsed)
                bare.append(direct)
                overhead.append(elapsed - direct)
    finally:
        conn.close()
    p50 = statistics.median(overhead)
    kinds = [s["kind"] for s in result["statements"] if s["kind"] in ("query", "explain")]
    return [
        Figure(
            name="scratchpad: one SELECT",
            playground=spread(scratch),
            reference=spread(bare),
            result=f"overhead {spread(overhead)}",
            target=f"overhead ≤ {TARGET_MS:g} ms p50",
            met=p50 <= TARGET_MS,
            details=[f"{SQL}; replayed: {kinds.count('query')} query, {kinds.count('explain')} EXPLAIN"],
        )
    ]


def post_sql(browser, sql: str) -> tuple[float, dict[str, Any]]:
    """POST /sql/run as `browser`: client wall ms and the RunResult JSON."""
    body = json.dumps({"sql": sql}).encode()
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": browser.cookies["csrftoken"],
        "Origin": f"http://127.0.0.1:{browser.port}",
    }
    started = time.perf_counter()
    status, data = browser.request("POST", "/sql/run", body, headers)
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        raise RuntimeError(f"/sql/run: HTTP {status} {data[:300]!r}")
    return elapsed, json.loads(data)
