"""Reaping with nothing to schedule: a loop in every web process, one pass at a time across all.

Each web process starts one daemon thread on its first request (`start_in_this_process` listens
to `request_started`): gunicorn's master forks before serving anything, so every worker starts
its own, and `runserver` does the same in the process that serves. Every REAP_EVERY_SECONDS the
thread opens a connection of its own to the app database, begins a transaction and tries
`pg_try_advisory_xact_lock`: the process that gets it reaps (idle sandboxes, and expired workshop
rooms with their sandboxes), every other one skips that round.
So scaled out to any number of workers and instances, reaping happens in one place at a time.

A transaction-level lock (not a session one) is released by COMMIT or by the connection
closing, so a worker killed mid-pass frees it at once, and it holds behind PgBouncer in
transaction mode, where an open transaction keeps its server connection. Between passes the
thread holds no connection. `manage.py reap_sandboxes` takes the same lock, waiting for it.
docs/deploy.md compares this with a task queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from playground.conf import setting
from playground.running import room_sandboxes
from playground.sandbox.registry import reap

log = logging.getLogger(__name__)

REAPER_LOCK = 0x5B0C_EA9
"""Advisory lock key (transaction level) held for the length of one reaping pass."""


@dataclass(frozen=True)
class ReapPass:
    """What one round of a reaper loop did."""

    locked_at: float
    """`time.monotonic()` when it held the lock (or found it taken)."""
    finished: float
    """`time.monotonic()` when it let the lock go."""
    dropped: tuple[str, ...]
    """Roles of the sandboxes it dropped (idle ones, then expired rooms')."""
    skipped: bool
    """Another process held the lock: this round reaped nothing."""


@contextmanager
def reaper_lock(*, wait: bool) -> Iterator[bool]:
    """Hold REAPER_LOCK for the block, on a connection of its own.

    Yields True once held; with `wait` False, yields False at once when another holds it.
    """
    holder = connections.create_connection(DEFAULT_DB_ALIAS)
    raw = holder.get_new_connection(holder.get_connection_params())  # not autocommit: a transaction
    try:
        if wait:
            raw.execute("SELECT pg_advisory_xact_lock(%s)", [REAPER_LOCK])
            yield True
        else:
            yield bool(raw.execute("SELECT pg_try_advisory_xact_lock(%s)", [REAPER_LOCK]).fetchone()[0])
        raw.commit()
    finally:
        raw.close()


def reap_once(*, wait: bool = False, idle_seconds: int | None = None) -> ReapPass:
    """One pass under REAPER_LOCK: idle sandboxes, then expired rooms and their sandboxes; or
    skip when another process is reaping (unless `wait`)."""
    with reaper_lock(wait=wait) as held:
        locked_at = time.monotonic()
        dropped = (*reap(idle_seconds), *room_sandboxes.reap_expired()) if held else ()
        finished = time.monotonic()
    return ReapPass(locked_at=locked_at, finished=finished, dropped=dropped, skipped=not held)


class Reaper:
    """A loop running `reap_once` every REAP_EVERY_SECONDS in a daemon thread.

    It stops when `stop` is called or when the setting turns 0 (read before every round).
    """

    def __init__(self) -> None:
        self.passes: deque[ReapPass] = deque(maxlen=1000)
        """The latest rounds, oldest first."""
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="playground-reaper", daemon=True)

    def start(self) -> Reaper:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            every = setting("REAP_EVERY_SECONDS")
            if not every or self._stopping.wait(every):
                return
            try:
                self.passes.append(reap_once())
            except Exception:  # the database is restarting, say: the next round tries again
                log.exception("reaping idle sandboxes failed; next try in %s s", every)
            finally:
                connections.close_all()  # this thread's own: nothing held between rounds


_start_lock = threading.Lock()
_running: tuple[int, Reaper] | None = None


def start_in_this_process(**signal_kwargs: Any) -> None:
    """Start this process's reaper loop unless it runs (a `request_started` receiver).

    Keyed by process id: a process forked from one that had a loop has no thread of it.
    """
    global _running
    if not setting("REAP_EVERY_SECONDS"):
        return
    current = _running
    if current is not None and current[0] == os.getpid() and current[1].alive:
        return
    with _start_lock:
        current = _running
        if current is None or current[0] != os.getpid() or not current[1].alive:
            _running = (os.getpid(), Reaper().start())


def stop_in_this_process() -> None:
    """Stop this process's reaper loop, if it has one, and wait for its round to end."""
    global _running
    with _start_lock:
        current, _running = _running, None
    if current is not None and current[0] == os.getpid():
        current[1].stop()
