"""Connections: the admin engine, one pooled engine per recent sandbox, and the run slots that
bound how many connections a process can hold."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import URL, Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from playground.conf import setting
from playground.models import Sandbox
from playground.running.engine import CONNECT_TIMEOUT_SECONDS, refuse_if_closed, sandbox_engine
from playground.sandbox.database import (
    admin_url,
    ensure_database,
    lock_down,
    role_password,
    startup_options,
)
from playground.sandbox.errors import SandboxBusyError, SandboxServerDownError
from playground.sandbox.servers import Server, named

log = logging.getLogger(__name__)

# Connections one process can hold on the server, at most:
#   SANDBOX_ENGINE_CACHE x SANDBOX_POOL_SIZE     idle, pooled, one engine per recent sandbox
# + RUNS_PER_PROCESS x CONNECTION_LIMIT          runs in progress (a role never exceeds its limit)
# + ADMIN_POOL_SIZE + ADMIN_MAX_OVERFLOW         provisioning, reset, reap, health checks
# + threads                                     the app database, one per thread.
# `connection_budget()` computes it for a deployment; the total over every process must stay
# below the server's max_connections minus its reserved slots, so that the playground never
# locks an operator out. With the defaults (cache 8, pool 1, 12 per run, admin 3) and gunicorn's
# 2 workers x 2 threads: 2 x (8 + 24 + 3 + 2) = 74 < 87 on a stock server (100 - 3 - 10 reserved).
ADMIN_POOL_SIZE = 1
ADMIN_MAX_OVERFLOW = 2
SANDBOX_MAX_OVERFLOW = 2


def connection_budget(processes: int, threads: int = 1) -> int:
    """Most connections `processes` web processes of `threads` threads each can open in total."""
    per_process = (
        setting("SANDBOX_ENGINE_CACHE") * setting("SANDBOX_POOL_SIZE")
        + min(threads, setting("RUNS_PER_PROCESS")) * setting("CONNECTION_LIMIT")
        + ADMIN_POOL_SIZE
        + ADMIN_MAX_OVERFLOW
        + threads
    )
    return processes * per_process


# --- run slots ------------------------------------------------------------------------------
_slots_lock = threading.Lock()
_slots: dict[str, tuple[int, threading.BoundedSemaphore]] = {}


def _semaphore(kind: str, size: int) -> threading.BoundedSemaphore:
    """The process's semaphore of `kind`, made anew when its configured size changed."""
    with _slots_lock:
        current = _slots.get(kind)
        if current is None or current[0] != size:
            current = _slots[kind] = (size, threading.BoundedSemaphore(size))
        return current[1]


def heavy_slots() -> int:
    """Heavy runs one process runs at once: at least one, and always one slot fewer than
    RUNS_PER_PROCESS (when there are two or more), so a light run always finds a slot."""
    runs = setting("RUNS_PER_PROCESS")
    return max(1, min(setting("HEAVY_RUNS_PER_PROCESS"), runs - 1))


@contextmanager
def run_slot(*, heavy: bool = False, server: Server | None = None) -> Iterator[None]:
    """One of the process's RUNS_PER_PROCESS run slots, waited for up to RUN_SLOT_WAIT_SECONDS.

    A run may open up to its role's CONNECTION_LIMIT connections; capping the runs in progress
    per process is what keeps `connection_budget` true whatever the number of threads.

    A `heavy` run (its declared cost is above the thresholds) first takes its turn: one of
    `heavy_slots()` in this process, so the other run slots stay free for light runs, and one of
    HEAVY_RUNS_AT_ONCE on the whole sandbox server (`server`, default `main`; see `heavy_turn`).
    """
    with heavy_turn(server) if heavy else nullcontext():
        slots = _semaphore("runs", setting("RUNS_PER_PROCESS"))
        if not slots.acquire(timeout=setting("RUN_SLOT_WAIT_SECONDS")):
            raise SandboxBusyError(
                "The playground is busy: every run slot of this server has been taken for "
                f"{setting('RUN_SLOT_WAIT_SECONDS')} s. Nothing ran; try again in a few seconds."
            )
        try:
            yield
        finally:
            slots.release()


HEAVY_LOCK = 0x68_65_61_76
"""First key of the advisory locks that count heavy runs on the sandbox server (the second is the
slot number, 0 to HEAVY_RUNS_AT_ONCE - 1)."""


@contextmanager
def heavy_turn(server: Server | None = None) -> Iterator[None]:
    """A heavy run's turn, waited for up to HEAVY_SLOT_WAIT_SECONDS, else `SandboxBusyError`.

    Two bounds: HEAVY_RUNS_PER_PROCESS in this process (a semaphore), and HEAVY_RUNS_AT_ONCE over
    every process and instance sharing the sandbox server: a session advisory lock per slot, held
    on an admin connection for the length of the run. Heavy runs spend whole cores, in Python and
    in Postgres; bounding them where the cores are is what keeps light runs quick. The wait is
    short on purpose: a waiting run holds a web thread that light runs need.
    """
    wait_until = time.monotonic() + setting("HEAVY_SLOT_WAIT_SECONDS")
    local = _semaphore("heavy", heavy_slots())
    if not local.acquire(timeout=setting("HEAVY_SLOT_WAIT_SECONDS")):
        raise SandboxBusyError(HEAVY_BUSY)
    try:
        with admin_engine(server).connect() as conn:
            slot = _server_slot(conn, wait_until)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k, :s)"), {"k": HEAVY_LOCK, "s": slot})
    finally:
        local.release()


def _server_slot(conn: Connection, wait_until: float) -> int:
    """Take one of the server's heavy-run locks, polling until `wait_until`; its slot number."""
    slots = list(range(setting("HEAVY_RUNS_AT_ONCE")))
    while True:
        for slot in slots:
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:k, :s)"), {"k": HEAVY_LOCK, "s": slot})
            if taken.scalar_one():
                return slot
        if time.monotonic() >= wait_until:
            raise SandboxBusyError(HEAVY_BUSY)
        time.sleep(0.05)


HEAVY_BUSY = (
    "Another heavy run (many statements, or many rows held in memory) is in progress on this "
    "server: heavy runs take turns so that everyone else's stay quick. Nothing ran; try again in "
    "a few seconds, or with smaller sizes."
)


# --- engines --------------------------------------------------------------------------------
_lock = threading.Lock()
_admin: dict[URL, Engine] = {}
_engines: OrderedDict[str, Engine] = OrderedDict()


def admin_engine(server: Server | None = None) -> Engine:
    """Autocommit engine on the sandbox database of `server` (default: `main`); creates and
    locks down the database once. A server that does not answer is `SandboxServerDownError`."""
    url = admin_url(server)
    with _lock:
        engine = _admin.get(url)
        if engine is None:
            with reaching(server):
                ensure_database(url)
                engine = create_engine(
                    url,
                    isolation_level="AUTOCOMMIT",
                    pool_size=ADMIN_POOL_SIZE,
                    max_overflow=ADMIN_MAX_OVERFLOW,
                    pool_timeout=10,
                    connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
                )
                event.listen(engine, "checkout", refuse_if_closed)  # instead of a pre-ping
                lock_down(engine, url)
            _check_version(engine, server or named(""))
            _admin[url] = engine
    return engine


def _check_version(engine: Engine, server: Server) -> None:
    """Say so when a server is not the version it is listed as: runs would be refused (or not)
    and labelled by the wrong version."""
    found = engine.dialect.server_version_info  # read by lock_down's connection
    if found and found[0] != server.version:
        log.error(
            "sandbox server %s is PostgreSQL %s but is listed as %s: correct its version in the settings",
            server.name,
            found[0],
            server.version,
        )


@contextmanager
def reaching(server: Server | None) -> Iterator[None]:
    """A connection failure to `server` (default `main`) in the block is `SandboxServerDownError`:
    its sessions get a 503 naming it, the app and the other servers keep working."""
    try:
        yield
    except OperationalError as exc:
        if not _connection_failure(exc):
            raise
        raise SandboxServerDownError.of(server or named("")) from exc


def _connection_failure(exc: OperationalError) -> bool:
    """Not reaching the server at all (or losing it), as opposed to a statement's own failure."""
    state = getattr(exc.orig, "sqlstate", None)
    lost = state is None or state.startswith("08") or state in ("57P01", "57P03")
    return exc.connection_invalidated or lost


ENGINES_KEPT_PER_POOL = 4
"""Engines kept per pooled one: the SANDBOX_ENGINE_CACHE most recent hold a pooled connection, and
this many times as many are kept without one (see `engine_for`)."""


def engine_for(sandbox: Sandbox) -> Engine:
    """A pooled engine that logs in as the sandbox's role, with capture listeners attached.

    Only the SANDBOX_ENGINE_CACHE most recently used engines keep a connection in their pool (the
    connection budget counts them); an engine that falls behind them closes its connection but
    is kept, up to ENGINES_KEPT_PER_POOL times as many: a session coming back to it then pays for
    a login only, not for a new engine (its first-connect queries, its statements compiled anew).
    """
    with _lock:
        engine = _engines.get(sandbox.role)
        if engine is not None:
            _engines.move_to_end(sandbox.role)
            behind = _idle_behind()
    if engine is not None:
        for idle in behind:
            idle.dispose()
        return engine
    admin = admin_engine(named(sandbox.server)).url
    # The role's limits travel in the URL as startup options, where the role cannot relax them;
    # in the URL, so that a second engine a variant makes from it (Run.engine_with) has them too.
    url = admin.set(
        username=sandbox.role,
        password=role_password(sandbox.role),
        query={**admin.query, "options": startup_options(sandbox.role)},
    )
    engine = sandbox_engine(url, pool_size=setting("SANDBOX_POOL_SIZE"), max_overflow=SANDBOX_MAX_OVERFLOW)
    evicted = []
    with _lock:
        current = _engines.get(sandbox.role)
        if current is not None:  # another thread made one meanwhile: use it, drop ours
            evicted.append(engine)
            engine = current
        else:
            _engines[sandbox.role] = engine
        while len(_engines) > setting("SANDBOX_ENGINE_CACHE") * ENGINES_KEPT_PER_POOL:
            evicted.append(_engines.popitem(last=False)[1])
        evicted += _idle_behind()
    for old in evicted:
        old.dispose()
    return engine


def _idle_behind() -> list[Engine]:
    """Engines behind the SANDBOX_ENGINE_CACHE most recent that hold an idle pooled connection
    and none in use: to be closed (`Engine.dispose` closes them and keeps the engine usable)."""
    behind = list(_engines.values())[: -setting("SANDBOX_ENGINE_CACHE") or None]
    return [e for e in behind if e.pool.checkedin() and not e.pool.checkedout()]


def forget_engine(role: str) -> None:
    """Drop the cached engine of `role`, closing its pooled connections (none is in use)."""
    with _lock:
        engine = _engines.pop(role, None)
    if engine is not None:
        engine.dispose()


def forget_admin_engine(url: URL) -> None:
    """Drop the admin engine of the sandbox database at `url`, closing its connections."""
    with _lock:
        engine = _admin.pop(url, None)
    if engine is not None:
        engine.dispose()


def dispose_engines() -> None:
    """Close every pooled connection this process holds on the sandbox database."""
    with _lock:
        engines = [*_engines.values(), *_admin.values()]
    for engine in engines:
        engine.dispose()
