"""Runs per second of 30 warm people running back to back on gunicorn.conf.py's defaults (2
workers x 2 threads) / the same statements replayed through psycopg by 30 threads, each logged in
as its person's sandbox role on a connection of its own; p95 of each."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.crowd import LIGHT
from bench.environment import role_connection
from bench.http_path import replay
from bench.report import Figure, quantile
from bench.server import Gunicorn, post_run, session_role

TARGET_RATIO = 0.7
"""Share of the bare replay's runs per second the site must reach with the same concurrency."""


def measure(site: Gunicorn, users: int, seconds: float) -> list[Figure]:
    """`users` people, each running LIGHT in turn with no pause, for `seconds`; then the same
    statements replayed with psycopg by as many threads for as long."""
    people = [site.browser() for _ in range(users)]
    sent = warm(people)
    site_times = together(users, seconds, lambda i, turn: post_run(people[i], *LIGHT[turn % len(LIGHT)])[0])
    connections = [role_connection(session_role(p)) for p in people]
    try:
        bare_times = together(
            users, seconds, lambda i, turn: replay(connections[i], sent[i][turn % len(LIGHT)])
        )
    finally:
        for conn in connections:
            conn.close()
    site_rate, bare_rate = len(site_times) / seconds, len(bare_times) / seconds
    ratio = site_rate / bare_rate
    runs = ", ".join(f"{slug}/{variant}" for slug, variant, _ in LIGHT)
    return [
        Figure(
            name=f"throughput: {users} people back to back",
            playground=f"{site_rate:.1f} runs/s (p95 {quantile(site_times, 0.95):.1f} ms)",
            reference=f"{bare_rate:.1f} runs/s (p95 {quantile(bare_times, 0.95):.1f} ms)",
            result=f"ratio {ratio:.2f}",
            target=f"≥ {TARGET_RATIO:g}x",
            met=ratio >= TARGET_RATIO,
            details=[
                f"{users} sessions, {len(LIGHT)} light runs in turn ({runs}), "
                f"{seconds:.0f} s each side; site p50 {quantile(site_times, 0.5):.1f} ms, "
                f"bare p50 {quantile(bare_times, 0.5):.1f} ms",
            ],
        )
    ]


def warm(people: list) -> list[list[list[dict[str, Any]]]]:
    """Every light run once per person, all at once: sandboxes made, tables seeded. Returns, per
    person and run, the statements the run sent (what the replay sends)."""
    sent: list[list[list[dict[str, Any]]]] = [[[] for _ in LIGHT] for _ in people]

    def one(i: int) -> None:
        for turn, run in enumerate(LIGHT):
            _, result = post_run(people[i], *run)
            assert result["ok"], result["error"]
            sent[i][turn] = result["statements"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(people))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent


def together(users: int, seconds: float, work) -> list[float]:
    """`work(person, turn)` in `users` threads back to back for `seconds`: the wall ms of every
    call that finished in time."""
    times: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def person(i: int) -> None:
        turn = i
        while True:
            started = time.perf_counter()
            work(i, turn)
            if time.monotonic() > stop_at:
                return
            with lock:
                times.append((time.perf_counter() - started) * 1000)
            turn += 1

    threads = [threading.Thread(target=person, args=(i,)) for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times
