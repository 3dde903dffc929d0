"""recipes.workers.at_once: real threads on a real barrier (no database needed)."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest
from sqlalchemy.exc import IntegrityError

from recipes.workers import at_once

TAG = contextvars.ContextVar("tag", default="unset")


def test_every_worker_leaves_the_line_up_after_the_last_one_arrived():
    arrived = {}

    def work(number, line_up):
        time.sleep(0.01 * number)  # arrive one after another
        arrived[number] = time.perf_counter()
        line_up()
        return number * 10

    workers = at_once(5, work)
    assert [w.number for w in workers] == [1, 2, 3, 4, 5]
    assert [w.value for w in workers] == [10, 20, 30, 40, 50]
    assert all(w.ok and w.error is None for w in workers)
    assert min(w.lined_up for w in workers) >= max(arrived.values())
    for w in workers:
        assert w.started <= w.lined_up <= w.finished
        assert w.ms == round((w.finished - w.started) * 1000, 1)
    assert workers[0].ms >= 40  # the first one waited for the fifth


def test_a_worker_failing_before_the_line_up_releases_the_others_at_once():
    def work(number, line_up):
        if number == 1:
            raise IntegrityError("INSERT …", {}, Exception("duplicate key"))
        line_up()
        return "reached"

    started = time.perf_counter()
    workers = at_once(4, work, timeout=5)
    assert time.perf_counter() - started < 2, "the others waited for a worker that had already failed"
    assert isinstance(workers[0].error, IntegrityError) and workers[0].lined_up is None
    for w in workers[1:]:
        assert isinstance(w.error, threading.BrokenBarrierError), w
        assert w.value is None and w.lined_up is None


def test_a_worker_failing_after_the_line_up_does_not_break_the_others():
    def work(number, line_up):
        line_up()
        if number == 1:
            raise IntegrityError("INSERT …", {}, Exception("duplicate key"))
        time.sleep(0.02)
        return "done"

    workers = at_once(6, work, timeout=5)
    assert isinstance(workers[0].error, IntegrityError) and workers[0].lined_up is not None
    assert [w.value for w in workers[1:]] == ["done"] * 5


def test_a_worker_that_never_lines_up_does_not_leave_the_others_waiting():
    def work(number, line_up):
        if number == 2:
            return "skipped the line-up"
        line_up()
        return "reached"

    started = time.perf_counter()
    workers = at_once(3, work, timeout=5)
    assert time.perf_counter() - started < 2
    assert workers[1].value == "skipped the line-up"
    assert all(isinstance(w.error, threading.BrokenBarrierError) for w in (workers[0], workers[2]))


def test_waves_run_at_most_that_many_together_each_on_its_own_line_up():
    lock, running, peak = threading.Lock(), [0], [0]

    def work(number, line_up):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        line_up()  # a wave of 2, 2, then 1: the last one must not wait for absent partners
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return number

    workers = at_once(5, work, at_most=2, timeout=5)
    assert [w.value for w in workers] == [1, 2, 3, 4, 5]
    assert all(w.ok for w in workers)
    assert peak[0] == 2


def test_a_bug_in_a_worker_is_raised_after_all_of_them_ended():
    finished = []

    def work(number, line_up):
        line_up()
        if number == 3:
            raise KeyError("not a database error")
        finished.append(number)

    with pytest.raises(KeyError, match="not a database error"):
        at_once(3, work)
    assert sorted(finished) == [1, 2]


def test_workers_run_in_a_copy_of_the_callers_context():
    # The statement capture is routed by a ContextVar: each worker must see the run's value.
    TAG.set("the run")
    workers = at_once(3, lambda number, line_up: (line_up(), TAG.get())[1])
    assert [w.value for w in workers] == ["the run"] * 3
