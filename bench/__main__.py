"""How much the playground adds on top of Postgres: each figure beside its reference, one run.

    python -m bench                  # every figure, a few minutes on a small machine
    python -m bench --quick          # fewer repetitions and 200 memory runs, for a smoke test
    python -m bench --only capture,honesty
    python -m bench --only room      # a room of 30 pressing Run at once, prepared or not

Without DATABASE_URL it starts a dedicated embedded Postgres in `.pgdata-bench/` (override with
PLAYGROUND_PGDATA) and migrates it, so it never disturbs a development server. Its sandboxes
carry the `sbxb_` role prefix and are dropped at the end.

Each figure (one module of bench/ each), what the playground side measures, and the reference it
is compared with:
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import (
    capture,
    cold_start,
    crowd,
    environment,
    honesty,
    http_path,
    memory,
    room,
    scratchpad,
    throughput,
)
from bench.report import Figure, print_table
from bench.server import Gunicorn

FIGURES = {
    "capture": capture,
    "http": http_path,
    "cold": cold_start,
    "honesty": honesty,
    "memory": memory,
    "scratchpad": scratchpad,
    "throughput": throughput,
    "crowd": crowd,
    "room": room,
}
"""Each figure's name on the command line, and the module that measures it (its docstring says how)."""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=describe(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=30, help="repetitions per figure (default 30)")
    parser.add_argument("--memory-runs", type=int, default=1000)
    parser.add_argument(
        "--users", type=int, default=30, help="people in the crowd or the room, 4 to 50 (default 30)"
    )
    parser.add_argument("--seconds", type=float, default=60, help="how long the crowd stays, 10 to 300 s")
    parser.add_argument(
        "--heavy", type=int, default=crowd.HEAVY_PEOPLE, help="of the crowd, people running heavy runs (3)"
    )
    parser.add_argument("--quick", action="store_true", help="10 repetitions, 200 memory runs, a 20 s crowd")
    parser.add_argument(
        "--throughput-seconds", type=float, default=20, help="length of each side of the throughput figure"
    )
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma separated, of {', '.join(FIGURES)}")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.memory_runs, args.seconds, args.throughput_seconds = 10, 200, 20, 8
    args.users = max(4, min(args.users, 50))  # loopback only, and bounded: see docs/performance.md
    args.seconds = max(10.0, min(args.seconds, 300.0))
    chosen = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}")

    environment.start()
    began = time.monotonic()
    figures: list[Figure] = []
    try:
        if "capture" in chosen:  # cheap repetitions, and a ratio close to 1 needs many
            figures += capture.measure(3 * args.repeat)
        if "honesty" in chosen:
            figures += honesty.measure(max(10, args.repeat // 2))
        if {"http", "cold", "memory", "scratchpad"} & set(chosen):
            # One worker that is never replaced: the memory figure measures the growth that
            # replacing workers (max_requests) exists to hide, over more requests than it allows.
            site = Gunicorn(GUNICORN_MAX_REQUESTS="0", GUNICORN_MAX_WORKER_MB="0")
            try:
                if "memory" in chosen:  # first, so the worker's growth starts from its first run
                    figures += memory.measure(site, args.memory_runs)
                if "http" in chosen:
                    figures += http_path.measure(site, args.repeat)
                if "scratchpad" in chosen:
                    figures += scratchpad.measure(site, args.repeat)
                if "cold" in chosen:
                    figures += cold_start.measure(site, max(5, args.repeat // 6))
            finally:
                site.stop()
                environment.drop_bench_sandboxes()  # each client address may hold only so many
        if "throughput" in chosen:  # the production defaults, keep-alive included
            site = Gunicorn(workers=2, threads=2, GUNICORN_KEEPALIVE="5")
            try:
                figures += throughput.measure(site, 30, args.throughput_seconds)
            finally:
                site.stop()
                environment.drop_bench_sandboxes()
        if "crowd" in chosen:  # the production defaults: two workers of two threads
            # Everyone comes from loopback here, where a real crowd has an address each: the
            # per-address sandbox limit would refuse the 51st person, which is not what is measured.
            site = Gunicorn(
                workers=2, threads=2, GUNICORN_KEEPALIVE="5", PLAYGROUND_SANDBOXES_PER_CLIENT="1000"
            )
            try:
                heavy = max(0, min(args.heavy, args.users - 1))
                figures += crowd.measure(site, args.users, args.seconds, heavy)
            finally:
                site.stop()
                environment.drop_bench_sandboxes()
        if "room" in chosen:  # the same defaults, a room of --users people
            site = Gunicorn(workers=2, threads=2, GUNICORN_KEEPALIVE="5")
            try:
                figures += room.measure(site, args.users)
            finally:
                site.stop()
    finally:
        environment.drop_bench_sandboxes()

    print(f"\nThis machine: {environment.describe_machine()}; {time.monotonic() - began:.0f} s")
    print_table(figures)


def describe() -> str:
    """This module's docstring followed by each figure's, for --help."""
    lines = [__doc__.rstrip() + "\n"]
    for name, module in FIGURES.items():
        lines.append(f"- {name}: " + "\n  ".join(module.__doc__.strip().splitlines()))
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
