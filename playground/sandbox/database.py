"""The sandbox database and who gets in: where it is, the password a sandbox role logs in with,
creating the database once, locking it down, and the lock that serializes privilege changes."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection
from psycopg import sql
from sqlalchemy import URL, Engine, create_engine, text
from sqlalchemy.engine import make_url

from playground.conf import setting
from playground.running.engine import CONNECT_TIMEOUT_SECONDS
from playground.sandbox.errors import SandboxServerDownError
from playground.sandbox.servers import MAIN, Server

log = logging.getLogger(__name__)

ACL_LOCK = 0x5B0C_AC1
"""Advisory lock key serializing privilege changes on the sandbox database: two concurrent
GRANT/REVOKE/DROP OWNED on the same database row fail with "tuple concurrently updated"."""


def admin_url(server: Server | None = None) -> URL:
    """The sandbox database of `server` (default: `main`), as the user that creates roles and
    schemas. An embedded server is started here, on first use."""
    if server is not None and server.name != MAIN:
        return server_url(server)
    if setting("SANDBOX_DATABASE_URL"):
        return make_url(setting("SANDBOX_DATABASE_URL")).set(drivername="postgresql+psycopg")
    app = connection.settings_dict
    query = {"host": app["HOST"]} if str(app["HOST"]).startswith("/") else {}
    user, password = setting("SANDBOX_ADMIN") or (app["USER"], app["PASSWORD"])
    return URL.create(
        "postgresql+psycopg",
        username=user or None,
        password=password or None,
        host=None if query else (app["HOST"] or None),
        port=int(app["PORT"]) if app["PORT"] else None,
        database=f"{app['NAME']}_sandbox",
        query=query,
    )


def server_url(server: Server) -> URL:
    """A server's own URL, or the socket of its embedded server (the database named as `main`'s)."""
    if server.url:
        return make_url(server.url).set(drivername="postgresql+psycopg")
    from playground import embedded

    database = admin_url().database
    try:
        running = embedded.start_sandbox_server(
            server.pgdata, sandbox_database=database, secret=settings.SECRET_KEY, version=server.version
        )
    except Exception as exc:  # its data folder or its start failed: its sessions wait, nobody else
        log.warning("embedded sandbox server %s did not start: %s", server.name, exc)
        raise SandboxServerDownError.of(server) from exc
    return URL.create(
        "postgresql+psycopg",
        username=running.sandbox_user,
        password=running.sandbox_password,
        database=database,
        query={"host": running.socket_dir},
    )


def role_password(role: str) -> str:
    """The password of sandbox role `role`: derived from SECRET_KEY, so nothing secret is stored."""
    return hmac.new(settings.SECRET_KEY.encode(), role.encode(), hashlib.sha256).hexdigest()


def session_limits(role: str) -> dict[str, str]:
    """The settings every session of sandbox `role` runs under.

    They are the role's own settings (for any client that logs in as it) and are sent again as
    startup options by the app's connections (`startup_options`): a role may change its own
    defaults (`ALTER ROLE CURRENT_USER SET statement_timeout = 0`), but options a client sends at
    connection time take precedence over role settings, so the app's sessions keep these.
    """
    return {
        "search_path": role,
        "statement_timeout": str(setting("STATEMENT_TIMEOUT_MS")),
        "lock_timeout": str(setting("LOCK_TIMEOUT_MS")),
        "idle_in_transaction_session_timeout": str(setting("IDLE_IN_TRANSACTION_TIMEOUT_MS")),
        "work_mem": str(setting("WORK_MEM")),
        "temp_file_limit": str(setting("TEMP_FILE_LIMIT")),
        # A query whose client went away (a killed worker) is cancelled at the next check.
        "client_connection_check_interval": str(setting("CLIENT_CHECK_INTERVAL_MS")),
    }


SUPERUSER_ONLY = frozenset({"temp_file_limit"})
"""Settings a role cannot change on itself, nor send at login: its role setting is authoritative."""


def startup_options(role: str) -> str:
    """libpq `options` carrying the role's limits, for every connection the app opens as it."""
    escape = str.maketrans({"\\": "\\\\", " ": "\\ "})
    return " ".join(
        f"-c {name}={value.translate(escape)}"
        for name, value in session_limits(role).items()
        if name not in SUPERUSER_ONLY
    )


def ensure_database(url: URL) -> None:
    """Create the database `url` names unless it exists; safe when several processes race."""
    maintenance = create_engine(
        url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=None,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )
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


def lock_down(engine: Engine, url: URL) -> None:
    """Nobody but a sandbox's own role gets in; public schema closed; app database closed.

    Each is done only while PUBLIC still has the privilege: the app database belongs to another
    role, which may have closed it already (the embedded server's setup does).
    """
    app_db = connection.settings_dict["NAME"]
    databases = [url.database] + ([app_db] if app_db != url.database else [])
    with engine.connect() as conn, acl_lock(conn):
        open_to_all = conn.execute(
            text(
                "SELECT datname FROM pg_database WHERE datname = ANY(:dbs) "
                "AND has_database_privilege('public', oid, 'CONNECT, TEMPORARY')"
            ),
            {"dbs": databases},
        ).scalars()
        statements = [
            sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)) for db in open_to_all
        ]
        if conn.execute(text("SELECT has_schema_privilege('public', 'public', 'CREATE, USAGE')")).scalar():
            statements.append(sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
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
