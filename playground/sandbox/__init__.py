"""Sandboxes: one login role and one schema per browser session, in the sandbox database.

Isolation is Postgres' job, not the app's: recipes run over connections authenticated as the
sandbox's own role, which owns its schema and nothing else, may connect to the sandbox database
only, and carries its limits (timeouts, temp files, memory, connections) as role settings.
The role's password is derived from SECRET_KEY, so nothing secret is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql
from sqlalchemy import URL, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError

from playground.models import RunAllowance, Sandbox
from playground.running import capture

log = logging.getLogger(__name__)

ACL_LOCK = 0x5B0C_AC1
"""Advisory lock key serializing privilege changes on the sandbox database: two concurrent
GRANT/REVOKE/DROP OWNED on the same database row fail with "tuple concurrently updated"."""

# Connections one process can hold on the server, at most:
#   SANDBOX_ENGINE_CACHE x SANDBOX_POOL_SIZE     idle, pooled, one engine per recent sandbox
# + RUNS_PER_PROCESS x CONNECTION_LIMIT          runs in progress (a role never exceeds its limit)
# + ADMIN_POOL_SIZE + ADMIN_MAX_OVERFLOW         provisioning, reset, reap, health checks
# + threads                                     the app database, one per thread.
# `connection_budget()` computes it for a deployment; the total over every process must stay
# below the server's max_connections minus its reserved slots, so that the playground never
# locks an operator out. With the defaults (cache 4, pool 1, 3 runs x 12, admin 3) and gunicorn's
# 2 workers x 4 threads: 2 x (4 + 36 + 3 + 4) = 94 < 97 on a stock server (100 - 3 reserved).
ADMIN_POOL_SIZE = 1
ADMIN_MAX_OVERFLOW = 2
SANDBOX_MAX_OVERFLOW = 2


class SandboxLimitError(Exception):
    """A limit of the instance was hit (as many sandboxes as allowed); `status` is the HTTP one."""

    status = 503


class SandboxBusyError(SandboxLimitError):
    """Every run slot of this process is taken."""


class SandboxQuotaError(SandboxLimitError):
    """The sandbox's tables take more space than its quota allows."""

    status = 507


def connection_budget(processes: int, threads: int = 1) -> int:
    """Most connections `processes` web processes of `threads` threads each can open in total."""
    per_process = (
        conf("SANDBOX_ENGINE_CACHE") * conf("SANDBOX_POOL_SIZE")
        + min(threads, conf("RUNS_PER_PROCESS")) * conf("CONNECTION_LIMIT")
        + ADMIN_POOL_SIZE
        + ADMIN_MAX_OVERFLOW
        + threads
    )
    return processes * per_process


_slots: tuple[int, threading.BoundedSemaphore] | None = None


@contextmanager
def run_slot() -> Iterator[None]:
    """One of the process's RUNS_PER_PROCESS run slots, waited for up to RUN_SLOT_WAIT_SECONDS.

    A run may open up to its role's CONNECTION_LIMIT connections; capping the runs in progress
    per process is what keeps `connection_budget` true whatever the number of threads.
    """
    global _slots
    size = conf("RUNS_PER_PROCESS")
    with _lock:
        if _slots is None or _slots[0] != size:
            _slots = (size, threading.BoundedSemaphore(size))
        slots = _slots[1]
    if not slots.acquire(timeout=conf("RUN_SLOT_WAIT_SECONDS")):
        raise SandboxBusyError(
            "The playground is busy: every run slot of this server has been taken for "
            f"{conf('RUN_SLOT_WAIT_SECONDS')} s. Nothing ran; try again in a few seconds."
        )
    try:
        yield
    finally:
        slots.release()


def conf(key: str):
    return settings.PLAYGROUND[key]


# --- where sandboxes live -----------------------------------------------------------------
def admin_url() -> URL:
    """The sandbox database, as the user that creates roles and schemas."""
    if conf("SANDBOX_DATABASE_URL"):
        return _with_driver(conf("SANDBOX_DATABASE_URL"))
    app = connection.settings_dict
    query = {"host": app["HOST"]} if str(app["HOST"]).startswith("/") else {}
    return URL.create(
        "postgresql+psycopg",
        username=app["USER"] or None,
        password=app["PASSWORD"] or None,
        host=None if query else (app["HOST"] or None),
        port=int(app["PORT"]) if app["PORT"] else None,
        database=f"{app['NAME']}_sandbox",
        query=query,
    )


def _with_driver(url: str) -> URL:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql+psycopg")


_lock = threading.Lock()
_admin: dict[URL, Engine] = {}
_engines: OrderedDict[str, Engine] = OrderedDict()


def admin_engine() -> Engine:
    """Autocommit engine on the sandbox database; creates and locks down the database once."""
    url = admin_url()
    with _lock:
        engine = _admin.get(url)
        if engine is None:
            _ensure_database(url)
            engine = create_engine(
                url,
                isolation_level="AUTOCOMMIT",
                pool_size=ADMIN_POOL_SIZE,
                max_overflow=ADMIN_MAX_OVERFLOW,
                pool_timeout=10,
                pool_pre_ping=True,
            )
            _lock_down(engine, url)
            _admin[url] = engine
    return engine


def _ensure_database(url: URL) -> None:
    maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=None)
    try:
        with maintenance.connect() as conn:
            if conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
            ).first():
                return
            try:
                conn.execute(
                    text(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)).as_string())
                )
            except Exception:  # another process created it first
                if not conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
                ).first():
                    raise
    finally:
        maintenance.dispose()


def _lock_down(engine: Engine, url: URL) -> None:
    """Nobody but a sandbox's own role gets in; public schema closed; app database closed."""
    statements = [
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(url.database)),
        sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"),
    ]
    app_db = connection.settings_dict["NAME"]
    if app_db != url.database:
        statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(app_db)))
    with engine.connect() as conn, acl_lock(conn):
        for stmt in statements:
            try:
                conn.execute(text(stmt.as_string()))
            except Exception as exc:  # not the owner: say so, the operator must do it
                log.warning("could not run %s: %s", stmt.as_string(), exc)


@contextmanager
def acl_lock(conn) -> Iterator[None]:
    """Hold the sandbox database's privilege-change lock (session level, autocommit connection)."""
    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ACL_LOCK})
    try:
        yield
    finally:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ACL_LOCK})


# --- roles ----------------------------------------------------------------------------------
def role_password(role: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), role.encode(), hashlib.sha256).hexdigest()


def provision() -> Sandbox:
    """Create a new sandbox (role, schema, registry row)."""
    if Sandbox.objects.count() >= conf("MAX_SANDBOXES"):
        raise SandboxLimitError(
            "This playground is full: every sandbox slot is in use. Try again in a while."
        )
    role = f"{conf('ROLE_PREFIX')}{secrets.token_hex(6)}"
    engine = admin_engine()
    ident = sql.Identifier(role)
    settings_sql = {
        "search_path": role,
        "statement_timeout": conf("STATEMENT_TIMEOUT_MS"),
        "lock_timeout": conf("LOCK_TIMEOUT_MS"),
        "idle_in_transaction_session_timeout": conf("IDLE_IN_TRANSACTION_TIMEOUT_MS"),
        "work_mem": conf("WORK_MEM"),
        "temp_file_limit": conf("TEMP_FILE_LIMIT"),
        # A query whose client went away (a killed worker) is cancelled at the next check.
        "client_connection_check_interval": conf("CLIENT_CHECK_INTERVAL_MS"),
    }
    # One round trip, one transaction: the role, its settings, CONNECT on the database and its
    # schema appear together or not at all. The ACL lock is a transaction-level one here, held
    # until the batch commits.
    statements = [
        sql.SQL(
            "CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {} NOSUPERUSER NOCREATEDB "
            "NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
        ).format(ident, sql.Literal(role_password(role)), sql.Literal(conf("CONNECTION_LIMIT"))),
        *(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(ident, sql.Identifier(name), sql.Literal(str(value)))
            for name, value in settings_sql.items()
        ),
        sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(ACL_LOCK)),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(engine.url.database), ident),
        sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident, ident),
    ]
    with engine.connect() as conn:
        # Without parameters psycopg sends the batch as one simple query: Postgres runs it as a
        # single implicit transaction even on this autocommit connection.
        conn.connection.dbapi_connection.execute(sql.SQL(";\n").join(statements))
    return Sandbox.objects.create(role=role, last_used_at=timezone.now())


def engine_for(sandbox: Sandbox) -> Engine:
    """A pooled engine that logs in as the sandbox's role, with capture listeners attached."""
    with _lock:
        engine = _engines.get(sandbox.role)
        if engine is not None:
            _engines.move_to_end(sandbox.role)
            return engine
    admin = admin_engine().url
    url = admin.set(username=sandbox.role, password=role_password(sandbox.role))
    engine = create_engine(
        url,
        pool_size=conf("SANDBOX_POOL_SIZE"),
        max_overflow=SANDBOX_MAX_OVERFLOW,
        pool_timeout=5,
        pool_pre_ping=True,
        # Server-side prepared statements would let Postgres switch to a generic plan after a few
        # runs, silently changing the plans people compare; every run is planned afresh.
        connect_args={"prepare_threshold": None},
    )
    event.listen(engine, "reset", _discard_session_state)
    capture.install(engine)
    evicted = []
    with _lock:
        current = _engines.get(sandbox.role)
        if current is not None:  # another thread made one meanwhile: use it, drop ours
            evicted.append(engine)
            engine = current
        else:
            _engines[sandbox.role] = engine
        while len(_engines) > conf("SANDBOX_ENGINE_CACHE"):
            evicted.append(_engines.popitem(last=False)[1])
    for old in evicted:
        old.dispose()
    return engine


def _discard_session_state(dbapi_connection, connection_record, reset_state) -> None:
    """Before a connection goes back to the pool, forget whatever the run did to its session.

    ROLLBACK alone keeps session-level SETs (a variant's `SET statement_timeout = 0` would
    outlive it), temporary tables, prepared statements, advisory locks and LISTENs. DISCARD ALL
    returns the session to the role's own settings. A failure here makes the pool discard the
    connection instead of reusing it.
    """
    if reset_state.terminate_only:
        return
    dbapi_connection.rollback()
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute("DISCARD ALL")
    finally:
        dbapi_connection.autocommit = False


def _forget_engine(role: str) -> None:
    with _lock:
        engine = _engines.pop(role, None)
    if engine is not None:
        engine.dispose()


def claim(role: str) -> Sandbox | None:
    """The registry row of `role`, marked as in use in the same statement; None if it is gone.

    A reaper holds the row locked while it drops the sandbox, so this waits for it and then
    finds nothing.
    """
    now = timezone.now()
    table = connection.ops.quote_name(Sandbox._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_used_at = %s WHERE role = %s RETURNING id, created_at", [now, role]
        )
        row = cursor.fetchone()
    return Sandbox(id=row[0], role=role, created_at=row[1], last_used_at=now) if row else None


def touch(sandbox: Sandbox) -> bool:
    """Mark the sandbox as in use; False when it no longer exists (a reaper dropped it).

    A reaper holds the registry row locked while it drops the sandbox, so this update waits for
    it and then finds no row: the caller provisions a new sandbox instead of using a dead one.
    """
    sandbox.last_used_at = timezone.now()
    return bool(Sandbox.objects.filter(pk=sandbox.pk).update(last_used_at=sandbox.last_used_at))


def size_bytes(sandbox: Sandbox) -> int:
    """Space taken by the sandbox's tables, their indexes and TOAST data.

    Measuring takes a share lock on each table; a sandbox holding a table locked (a run of
    another tab, an abandoned transaction) must not stall the request, so after a short wait
    this falls back to the page counts the catalog keeps (exact after ANALYZE, which seeding runs).
    """
    with admin_engine().connect() as conn:
        conn.execute(text("SET lock_timeout = '200ms'"))
        try:
            return int(conn.execute(text(_EXACT_SIZE), {"r": sandbox.role}).scalar_one())
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":
                raise
            return int(conn.execute(text(_ESTIMATED_SIZE), {"r": sandbox.role}).scalar_one())
        finally:
            conn.execute(text("RESET lock_timeout"))


_EXACT_SIZE = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :r AND c.relkind IN ('r', 'm', 'p')
"""
_ESTIMATED_SIZE = """
SELECT coalesce(sum(c.relpages::bigint), 0) * current_setting('block_size')::bigint FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :r
"""


def check_quota(sandbox: Sandbox) -> int:
    """Refuse to run in a sandbox already over its size quota; return its size otherwise."""
    size, quota = size_bytes(sandbox), conf("SANDBOX_MAX_BYTES")
    if size > quota:
        raise SandboxQuotaError(
            f"Over quota: this sandbox holds {size / 2**20:,.0f} MB of tables, more than the "
            f"{quota / 2**20:,.0f} MB each sandbox may use. Press Reset (its tables are dropped and "
            "re-seeded on the next run), then use smaller sizes."
        )
    return size


def reset(sandbox: Sandbox) -> None:
    """Drop every object of the sandbox and give it an empty schema again."""
    _forget_engine(sandbox.role)
    ident = sql.Identifier(sandbox.role)
    with admin_engine().connect() as conn:
        _terminate(conn, sandbox.role)
        conn.execute(text(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident).as_string()))
        conn.execute(text(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident, ident).as_string()))


def drop(sandbox: Sandbox) -> None:
    """Remove the sandbox's schema, role and registry row."""
    _forget_engine(sandbox.role)
    ident = sql.Identifier(sandbox.role)
    with admin_engine().connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": sandbox.role}).first()
        if exists:  # NOLOGIN first so nothing reconnects between terminate and drop
            conn.execute(text(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident).as_string()))
        _terminate(conn, sandbox.role)
        conn.execute(text(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident).as_string()))
        if exists:
            with acl_lock(conn):  # DROP OWNED revokes its CONNECT on the database
                conn.execute(text(sql.SQL("DROP OWNED BY {}").format(ident).as_string()))
                conn.execute(text(sql.SQL("DROP ROLE IF EXISTS {}").format(ident).as_string()))
    Sandbox.objects.filter(pk=sandbox.pk).delete()


def _terminate(conn, role: str) -> None:
    conn.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = :r AND pid <> pg_backend_pid()"
        ),
        {"r": role},
    )


def reap(idle_seconds: int | None = None) -> list[str]:
    """Drop sandboxes idle for longer than `idle_seconds`; safe to run from many processes.

    Each candidate row is locked with SKIP LOCKED, so two reapers never pick the same sandbox,
    and a sandbox whose role has a session that is not idle (a query running, a transaction
    open) is left alone. A request touching the sandbox meanwhile waits on the row lock and,
    finding the row gone, provisions a new sandbox (see `touch`).
    """
    idle = idle_seconds if idle_seconds is not None else conf("SANDBOX_IDLE_SECONDS")
    cutoff = timezone.now() - timedelta(seconds=idle)
    # Run allowances untouched for an hour are full again: forgetting them changes nothing.
    RunAllowance.objects.filter(updated_at__lt=timezone.now() - timedelta(hours=1)).delete()
    dropped: list[str] = []
    seen: list[str] = []
    while True:
        with transaction.atomic():
            sandbox = (
                Sandbox.objects.select_for_update(skip_locked=True)
                .filter(last_used_at__lt=cutoff)
                .exclude(role__in=seen)
                .order_by("last_used_at")
                .first()
            )
            if sandbox is None:
                return dropped
            seen.append(sandbox.role)
            if _busy(sandbox.role):
                continue
            drop(sandbox)
            dropped.append(sandbox.role)
            log.info("reaped sandbox %s", sandbox.role)


def _busy(role: str) -> bool:
    with admin_engine().connect() as conn:
        return bool(
            conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE usename = :r AND state <> 'idle'"),
                {"r": role},
            ).scalar()
        )
