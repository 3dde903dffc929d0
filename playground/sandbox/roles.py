"""A sandbox's life in Postgres: its role and schema created, emptied, and dropped."""

from __future__ import annotations

import secrets

from psycopg import sql
from sqlalchemy import text

from playground.conf import setting
from playground.models import Sandbox
from playground.sandbox.admission import admit, current_client
from playground.sandbox.database import ACL_LOCK, acl_lock, role_password, session_limits
from playground.sandbox.engines import admin_engine, forget_engine, reaching
from playground.sandbox.servers import Server, default_version, named

SCRAM_ITERATIONS = 16
"""PBKDF2 rounds of a sandbox role's stored password (Postgres' default, 4,096, is for passwords
people choose)."""


def provision(client: str | None = None, version: int | None = None) -> Sandbox:
    """Create a new sandbox (registry row, role, schema) for `client` (default: the client of
    the request being served) on a server of `version` (default: `main`'s), or refuse with
    `SandboxLimitError` when a limit says no."""
    role = f"{setting('ROLE_PREFIX')}{secrets.token_hex(6)}"
    box = admit(role, current_client.get() if client is None else client, version or default_version())
    try:
        _create(role, named(box.server))
    except BaseException:
        Sandbox.objects.filter(pk=box.pk).delete()
        raise
    return box


def _create(role: str, server: Server) -> None:
    engine = admin_engine(server)
    ident = sql.Identifier(role)
    # One round trip, one transaction: the role, its settings, CONNECT on the database and its
    # schema appear together or not at all. The ACL lock is a transaction-level one here, held
    # until the batch commits.
    statements = [
        # The password is a 256-bit HMAC, not something a person chose: stretching it with 4,096
        # PBKDF2 rounds guards nothing, yet every new connection repeats them (~5 ms of a login
        # here). Postgres 16 and later hash it with this many, for this batch only.
        sql.SQL(
            "SELECT set_config('scram_iterations', {}, true) "
            "WHERE current_setting('server_version_num')::int >= 160000"
        ).format(sql.Literal(str(SCRAM_ITERATIONS))),
        sql.SQL(
            "CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {} NOSUPERUSER NOCREATEDB "
            "NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
        ).format(ident, sql.Literal(role_password(role)), sql.Literal(setting("CONNECTION_LIMIT"))),
        *(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(ident, sql.Identifier(name), sql.Literal(value))
            for name, value in session_limits(role).items()
        ),
        sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(ACL_LOCK)),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(engine.url.database), ident),
        sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident, ident),
    ]
    with reaching(server), engine.connect() as conn:
        # Without parameters psycopg sends the batch as one simple query: Postgres runs it as a
        # single implicit transaction even on this autocommit connection.
        conn.connection.dbapi_connection.execute(sql.SQL(";\n").join(statements))


def reset(sandbox: Sandbox) -> None:
    """Drop every object of the sandbox and give it an empty schema again."""
    forget_engine(sandbox.role)
    ident = sql.Identifier(sandbox.role)
    server = named(sandbox.server)
    with reaching(server), admin_engine(server).connect() as conn:
        terminate(conn, sandbox.role)
        conn.execute(text(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident).as_string()))
        conn.execute(text(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident, ident).as_string()))


def drop(sandbox: Sandbox) -> None:
    """Remove the sandbox's schema, role and registry row."""
    forget_engine(sandbox.role)
    ident = sql.Identifier(sandbox.role)
    server = named(sandbox.server)
    with reaching(server), admin_engine(server).connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": sandbox.role}).first()
        if exists:  # NOLOGIN first so nothing reconnects between terminate and drop
            conn.execute(text(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident).as_string()))
        terminate(conn, sandbox.role)
        conn.execute(text(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident).as_string()))
        if exists:
            with acl_lock(conn):  # DROP OWNED revokes its CONNECT on the database
                conn.execute(text(sql.SQL("DROP OWNED BY {}").format(ident).as_string()))
                conn.execute(text(sql.SQL("DROP ROLE IF EXISTS {}").format(ident).as_string()))
    Sandbox.objects.filter(pk=sandbox.pk).delete()


def terminate(conn, role: str) -> None:
    """End every session of `role` but the one of `conn` (an admin connection)."""
    conn.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = :r AND pid <> pg_backend_pid()"
        ),
        {"r": role},
    )
