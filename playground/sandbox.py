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
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql
from sqlalchemy import URL, Engine, create_engine, text

from playground import capture
from playground.models import Sandbox

log = logging.getLogger(__name__)
ENGINE_CACHE_SIZE = 32


class SandboxLimitError(Exception):
    """This instance already holds as many sandboxes as it is allowed to."""


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
                url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=4, pool_pre_ping=True
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
    with engine.connect() as conn:
        for stmt in statements:
            try:
                conn.execute(text(stmt.as_string()))
            except Exception as exc:  # not the owner: say so, the operator must do it
                log.warning("could not run %s: %s", stmt.as_string(), exc)


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
    }
    with engine.connect() as conn:
        conn.execute(
            text(
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {} NOSUPERUSER NOCREATEDB "
                    "NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
                )
                .format(ident, sql.Literal(role_password(role)), sql.Literal(conf("CONNECTION_LIMIT")))
                .as_string()
            )
        )
        for name, value in settings_sql.items():
            conn.execute(
                text(
                    sql.SQL("ALTER ROLE {} SET {} = {}")
                    .format(ident, sql.Identifier(name), sql.Literal(str(value)))
                    .as_string()
                )
            )
        conn.execute(
            text(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}")
                .format(sql.Identifier(engine.url.database), ident)
                .as_string()
            )
        )
        conn.execute(text(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident, ident).as_string()))
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
        pool_size=2,
        max_overflow=2,
        pool_timeout=5,
        pool_pre_ping=True,
        # Server-side prepared statements would let Postgres switch to a generic plan after a few
        # runs, silently changing the plans people compare; every run is planned afresh.
        connect_args={"prepare_threshold": None},
    )
    capture.install(engine)
    with _lock:
        _engines[sandbox.role] = engine
        while len(_engines) > ENGINE_CACHE_SIZE:
            _, old = _engines.popitem(last=False)
            old.dispose()
    return engine


def _forget_engine(role: str) -> None:
    with _lock:
        engine = _engines.pop(role, None)
    if engine is not None:
        engine.dispose()


def touch(sandbox: Sandbox) -> None:
    sandbox.last_used_at = timezone.now()
    Sandbox.objects.filter(pk=sandbox.pk).update(last_used_at=sandbox.last_used_at)


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
    and a sandbox whose role still has a query running is left alone.
    """
    idle = idle_seconds if idle_seconds is not None else conf("SANDBOX_IDLE_SECONDS")
    cutoff = timezone.now() - timedelta(seconds=idle)
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
                text("SELECT count(*) FROM pg_stat_activity WHERE usename = :r AND state = 'active'"),
                {"r": role},
            ).scalar()
        )
