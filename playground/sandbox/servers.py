"""The sandbox servers: where sandboxes live, each server with its PostgreSQL major version.

The first is always `main`, the sandbox database of SANDBOX_DATABASE_URL (or `<app database>
_sandbox` on the app's server), of version SANDBOX_VERSION. More come from SANDBOX_SERVERS: from
PLAYGROUND_SANDBOX_SERVERS for a real deployment, and in the embedded setup a PostgreSQL 16
server of its own (`pg16`).

The embedded 16 server is started on first use, not at start: starting it costs 0.15-0.3 s
(about 2 s more for its first initdb) and about 65 MB of memory over its six processes, which a
site where nobody asks for 16 need not pay (docs/deploy.md, "Several sandbox servers").

A new sandbox goes to the least-loaded server of the version asked for (`least_loaded`), chosen
under the admission lock, so concurrent sessions spread evenly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from playground.conf import setting

MAIN = "main"
"""The name of the first server; a registry row with no server name lives there."""


@dataclass(frozen=True)
class Server:
    """One sandbox server."""

    name: str
    version: int
    """Its PostgreSQL major version, as declared (a mismatch is logged at first connection)."""
    url: str | None = None
    """The sandbox database as its administrator; None for `main` (see `database.admin_url`)
    and for an embedded server, whose socket is known once it runs."""
    pgdata: Path | None = None
    """The data folder of an embedded server, started on first use."""


class UnknownServer(LookupError):
    """A registry row names a server no longer configured."""


def configured() -> list[Server]:
    """Every sandbox server, `main` first."""
    extra = [Server(**entry) for entry in setting("SANDBOX_SERVERS")]
    return [Server(MAIN, setting("SANDBOX_VERSION")), *extra]


def named(name: str) -> Server:
    """The server called `name` ("" is `main`), or `UnknownServer`."""
    for server in configured():
        if server.name == (name or MAIN):
            return server
    raise UnknownServer(name)


def is_configured(name: str) -> bool:
    """Whether a registry row's server (`Sandbox.server`) is still listed."""
    return any(server.name == (name or MAIN) for server in configured())


def names_of(version: int) -> list[str]:
    """The registry names (`Sandbox.server`) of the servers of `version`, "" among them when
    `main` is one (rows made before servers were named)."""
    names = [s.name for s in configured() if s.version == version]
    return [*names, ""] if MAIN in names else names


def default_version() -> int:
    """The version a run gets when none is asked for: `main`'s."""
    return setting("SANDBOX_VERSION")


def versions() -> list[int]:
    """The versions offered, oldest first."""
    return sorted({server.version for server in configured()})


def least_loaded(version: int, counts: Mapping[str, int]) -> Server:
    """The server of `version` holding the fewest sandboxes (`counts`: name → sandboxes, "" for
    `main`), the first listed on a tie; `UnknownServer` when no server has that version."""
    candidates = [s for s in configured() if s.version == version]
    if not candidates:
        raise UnknownServer(f"PostgreSQL {version}")
    load = {**counts, MAIN: counts.get(MAIN, 0) + counts.get("", 0)}
    return min(candidates, key=lambda s: load.get(s.name, 0))
