"""A crowd on gunicorn.conf.py's defaults (2 workers x 2 threads): N people for a while, a few of
them running the heaviest runs the guards allow back to back, the rest light runs with think time
/ the same people's light runs one at a time on the idle site, before and after. Also one heavy
run alone: its time, statements, response size, and the memory of the worker and of the run's own
process."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.report import Figure, quantile
from bench.server import Gunicorn, post

LIGHT = [
    ("keyset-pagination", "keyset", {"rows": 10_000, "page": 5}),
    ("offset-pagination", "offset", {"rows": 10_000, "page": 5}),
    ("exists-count", "exists", {"rows": 10_000}),
    ("eager-loading", "selectinload", {}),
]
"""What most people run: the default recipes on small tables (each session seeds its own)."""
HEAVY = [
    ("bulk-insert", "add-loop", {"rows": 50_000, "batch_size": 1_000}),
    ("bulk-insert", "returning", {"rows": 100_000, "batch_size": 1_000}),
    ("eager-loading", "joinedload", {"authors": 2_000, "books_per_author": 50}),
]
"""The heaviest runs the guards let through, each seconds long and 150 MB or so of Python."""
ALONE = ("bulk-insert", "add-loop", {"rows": 50_000, "batch_size": 25})
"""One heavy run alone: the most statements an add-loop may send (the old 200,000-row one: 20,007)."""
UNLOADED_RUNS = 200
"""Light runs timed one at a time on the idle site, before the crowd and again after it, at
least: a p95 of fewer moved by a third from one run of the bench to the next."""
THINK_SECONDS = 5.0
"""A light person's mean pause between two runs (reading the result), uniform in ±50 %."""
HEAVY_PEOPLE = 3
"""People of the crowd who run HEAVY back to back (the others run LIGHT, with think time)."""
WORKER_BOUND_MB = 200
"""What a web worker may reach: GUNICORN_MAX_WORKER_MB. Heavy runs run in processes of their own."""
HEAVY_BOUND_MB = 400
"""What a heavy run's own process may reach: Python, the recipes and the largest run a guard allows."""


@dataclass
class Tally:
    """What the crowd saw, shared by its threads."""

    light: list[float] = field(default_factory=list)
    heavy: list[float] = field(default_factory=list)
    turns_refused: int = 0
    """Heavy runs answered 503 "another heavy run is in progress" (by design; retried later)."""
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def measure(site: Gunicorn, users: int, seconds: float, heavy: int = HEAVY_PEOPLE) -> list[Figure]:
    """`users` people (`heavy` of them heavy) for `seconds`, after the light mix on an idle site.
    With `heavy` 0, what light runs do to each other alone."""
    alone = one_heavy_run(site)
    people = [site.browser() for _ in range(users)]
    warm(people)
    settle()
    before = alone_one_at_a_time(people[heavy:])
    tally, rss = crowd(site, people, seconds, heavy)
    settle()
    # Timed on both sides of the crowd: this machine's speed drifts over minutes (it is shared),
    # and a reference taken in one slow or fast stretch moved the ratio by a third.
    unloaded = before + alone_one_at_a_time(people[heavy:])
    p95, base = quantile(tally.light, 0.95), quantile(unloaded, 0.95)
    unexpected = sum(tally.errors.values())
    peak = max((max(s) for s in rss["samples"] if s), default=0) / 2**20
    heavy_peak = rss["heavy"] / 2**20
    runs = len(tally.light) + len(tally.heavy)
    return [
        alone,
        Figure(
            name=f"crowd: light runs' p95, {users} people, {heavy} of them heavy",
            playground=f"p95 {p95:.1f} ms (p50 {quantile(tally.light, 0.5):.1f})",
            reference=f"p95 {base:.1f} ms (p50 {quantile(unloaded, 0.5):.1f})",
            result=f"ratio {p95 / base:.2f}",
            target="≤ 2x unloaded",
            met=p95 <= 2 * base,
            details=[
                f"{len(tally.light)} light and {len(tally.heavy)} heavy runs in {seconds:.0f} s "
                f"({runs / seconds:.1f} runs/s); light max {max(tally.light, default=0):.0f} ms",
                f"heavy runs: p50 {quantile(tally.heavy, 0.5) / 1000:.1f} s, "
                f"{tally.turns_refused} told to wait their turn (503, Retry-After)",
            ],
        ),
        Figure(
            name="crowd: unexpected errors",
            playground=f"{unexpected} of {runs + unexpected} requests",
            reference="0",
            result="; ".join(f"{n} x {kind}" for kind, n in tally.errors.most_common(3)) or "none",
            target="0",
            met=unexpected == 0,
        ),
        Figure(
            name="crowd: worker RSS",
            playground=f"peak {peak:.0f} MB",
            reference=f"first sample {rss['first'] / 2**20:.0f} MB",
            result=f"{rss['replaced']} worker(s) replaced",
            target=f"≤ {WORKER_BOUND_MB} MB",
            met=peak <= WORKER_BOUND_MB,
            details=[f"sampled every 0.2 s; worker pids seen: {rss['pids']}"],
        ),
        Figure(
            name="crowd: heavy-run process RSS",
            playground=f"peak {heavy_peak:.0f} MB",
            reference="-",
            result=f"{rss['heavy_pids']} heavy-run processes seen",
            target=f"≤ {HEAVY_BOUND_MB} MB",
            met=heavy_peak <= HEAVY_BOUND_MB,
        ),
    ]


def one_heavy_run(site: Gunicorn) -> Figure:
    """ALONE on an idle site: wall time, statements, response bytes, the memory of the worker and
    of the run's own process."""
    import psutil

    person = site.browser()
    post(person, ALONE[0], ALONE[1], {"rows": 100})  # the sandbox and its table exist
    workers = site.workers()
    before = max(w.memory_info().rss for w in workers)
    peak, child, stop = [before], [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], *(w.memory_info().rss for w in workers))
                child[0] = max([child[0], *(c.memory_info().rss for w in workers for c in w.children())])
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    elapsed, status, body = post(person, *ALONE)
    stop.set()
    sampler.join()
    result = json.loads(body)
    assert status == 200 and result["ok"], body[:300]
    listed = len(result["statements"])
    return Figure(
        name=f"alone: {ALONE[0]}/{ALONE[1]}, {ALONE[2]['rows']:,} rows, batches of {ALONE[2]['batch_size']}",
        playground=f"{elapsed / 1000:.1f} s, {len(body) / 1024:.0f} kB",
        reference=f"worker {before / 2**20:.0f} MB before",
        result=f"worker peak {peak[0] / 2**20:.0f} MB, its process {child[0] / 2**20:.0f} MB",
        target=f"≤ {WORKER_BOUND_MB} MB, ≤ {HEAVY_BOUND_MB} MB",
        met=peak[0] / 2**20 <= WORKER_BOUND_MB and child[0] / 2**20 <= HEAVY_BOUND_MB,
        details=[f"{result['query_count']:,} queries sent, {listed} statements listed in the response"],
    )


def alone_one_at_a_time(people: list) -> list[float]:
    """The crowd's light runs, one at a time: every person in turn, as many runs as they will make.

    Each run is a different session from the one before, as in the crowd, so both pay the same
    for what a process keeps per session (its engine and pooled connection, a few per process).
    """
    runs = max(UNLOADED_RUNS, 2 * len(people))
    return [post(people[i % len(people)], *LIGHT[(i // len(people)) % len(LIGHT)])[0] for i in range(runs)]


def settle(idle_percent: float = 10.0, at_most: float = 90.0) -> None:
    """Wait until the machine is idle: seeding every person's tables leaves Postgres analyzing
    and vacuuming them for a while (autovacuum), and an unloaded figure taken meanwhile is not
    unloaded. Three seconds in a row under `idle_percent` of the CPUs, or `at_most` seconds."""
    import psutil

    quiet, give_up = 0, time.monotonic() + at_most
    while quiet < 3 and time.monotonic() < give_up:
        quiet = quiet + 1 if psutil.cpu_percent(interval=1.0) < idle_percent else 0


def warm(people: list) -> None:
    """Every light run once per person: their sandboxes exist and their small tables are seeded."""
    threads = [threading.Thread(target=lambda p=p: [post(p, *run) for run in LIGHT]) for p in people]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()


def crowd(site: Gunicorn, people: list, seconds: float, heavy: int) -> tuple[Tally, dict[str, Any]]:
    tally = Tally()
    stop_at = time.monotonic() + seconds
    rss: dict[str, Any] = {
        "samples": [],
        "first": 0,
        "pids": set(),
        "replaced": 0,
        "heavy": 0,
        "heavy_pids": set(),
    }
    kinds = [heavy_person if i < heavy else light_person for i in range(len(people))]
    threads = [
        threading.Thread(target=kind, args=(p, stop_at, tally, i))
        for i, (kind, p) in enumerate(zip(kinds, people, strict=True))
    ]
    sampler = threading.Thread(target=sample_workers, args=(site, stop_at, rss))
    sampler.start()
    for t in threads:
        t.start()
    for t in [*threads, sampler]:
        t.join(seconds + 120)
    rss["replaced"] = max(0, len(rss["pids"]) - 2)
    rss["pids"] = len(rss["pids"])
    rss["heavy_pids"] = len(rss["heavy_pids"])
    return tally, rss


def light_person(person, stop_at: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    time.sleep(rng.uniform(0, THINK_SECONDS))
    while time.monotonic() < stop_at:
        run = rng.choice(LIGHT)
        elapsed, status, body = post(person, *run)
        with tally.lock:
            if status == 200:
                tally.light.append(elapsed)
            else:
                tally.errors[f"light {run[0]}: {describe(status, body)}"] += 1
        time.sleep(rng.uniform(0.5 * THINK_SECONDS, 1.5 * THINK_SECONDS))


def heavy_person(person, stop_at: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    turn = seed
    while time.monotonic() < stop_at:
        run = HEAVY[turn % len(HEAVY)]
        elapsed, status, body = post(person, *run)
        with tally.lock:
            if status == 200 and json.loads(body)["ok"]:
                tally.heavy.append(elapsed)
                turn += 1
            elif status == 503 and b"Another heavy run" in body:
                tally.turns_refused += 1
            else:
                tally.errors[f"heavy {run[0]}/{run[1]}: {describe(status, body)}"] += 1
        # As a well-behaved client does: wait as long as Retry-After asks, give or take.
        wait = float((person.headers or {}).get("Retry-After") or 1) if status == 503 else 1
        time.sleep(rng.uniform(0.5, 1.5) * wait)


def sample_workers(site: Gunicorn, stop_at: float, rss: dict[str, Any]) -> None:
    import psutil

    while time.monotonic() < stop_at:
        try:
            workers = site.workers()
            sizes = [w.memory_info().rss for w in workers]
            heavy = [c for w in workers for c in w.children()]
            rss["heavy"] = max([rss["heavy"], *(c.memory_info().rss for c in heavy)])
        except psutil.Error:  # a process ended between the listing and the reading
            continue
        rss["heavy_pids"].update(c.pid for c in heavy)
        rss["pids"].update(w.pid for w in workers)
        rss["samples"].append(sizes)
        rss["first"] = rss["first"] or max(sizes, default=0)
        time.sleep(0.2)


def describe(status: int, body: bytes) -> str:
    try:
        detail = json.loads(body).get("error") or json.loads(body).get("errors")
    except ValueError:
        detail = body[:80].decode(errors="replace")
    return f"HTTP {status} {str(detail)[:80]}"
