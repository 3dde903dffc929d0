"""Several workers at the same moment: threads lined up on a barrier, each one's outcome kept.

Races and bursts are only visible when the workers really start together, so each worker calls
`line_up()` at the point where it must wait for the others (after its SELECT, before it asks the
pool for a connection…). Recipes reach this through `Run.at_once`.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

EXPECTED = (SQLAlchemyError, threading.BrokenBarrierError)
"""Errors that are a worker's outcome (a unique violation, a pool timeout, a broken line-up).
Any other exception is a bug in the recipe: it is raised once every worker has ended."""


@dataclass(frozen=True)
class Worker[T]:
    """What one worker did, and when."""

    number: int
    """1, 2, … in the order the workers were started."""
    value: T | None
    """What the work returned; None when it raised."""
    error: BaseException | None
    """The error the work ended with (one of `EXPECTED`), or None."""
    started: float
    """`time.perf_counter()` when the worker began, before the line-up."""
    lined_up: float | None
    """When the line-up let it go; None if it never got through."""
    finished: float
    """When the work returned or raised."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ms(self) -> float:
        """Wall time from start to finish, line-up included, in ms (one decimal)."""
        return round((self.finished - self.started) * 1000, 1)


def at_once[T](
    n: int,
    work: Callable[[int, Callable[[], None]], T],
    *,
    at_most: int | None = None,
    timeout: float = 10.0,
) -> list[Worker[T]]:
    """Run `work(number, line_up)` in `n` threads that wait for each other at `line_up()`.

    Every worker calls `line_up()` once. With `at_most`, workers run in waves of that many
    (a connection budget, say), each wave lined up on its own barrier. A worker that ends before
    reaching the line-up, by raising or returning, aborts it: the others then get
    BrokenBarrierError instead of waiting `timeout` seconds for it. One that fails after the
    line-up leaves it alone, as aborting then could break workers still waking from it.

    Each thread runs in a copy of the caller's context, so its statements are captured with the
    run's. Returns one `Worker` per thread, in start order.
    """
    wave = max(1, min(n, at_most or n))
    lines = [threading.Barrier(min(wave, n - first), timeout=timeout) for first in range(0, n, wave)]
    # The pool has one thread per worker of a wave; the next wave's workers take them in order.
    with ThreadPoolExecutor(max_workers=wave) as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, _one, i + 1, work, lines[i // wave]) for i in range(n)
        ]
    done = [f.result() for f in futures]
    for worker in done:
        if worker.error is not None and not isinstance(worker.error, EXPECTED):
            raise worker.error
    return done


def _one[T](number: int, work: Callable[[int, Callable[[], None]], T], line: threading.Barrier) -> Worker[T]:
    """Run one worker, and abort its line-up if it ends without having got through it."""
    passed: list[float] = []
    started = time.perf_counter()

    def line_up() -> None:
        line.wait()
        passed.append(time.perf_counter())

    value: T | None = None
    error: BaseException | None = None
    try:
        value = work(number, line_up)
    except Exception as exc:
        error = exc
    if not passed:
        line.abort()
    return Worker(number, value, error, started, passed[0] if passed else None, time.perf_counter())
