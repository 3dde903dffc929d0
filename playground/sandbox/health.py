"""Each sandbox server's state, for /healthz and the operator's status page.

Reading it starts nothing: an embedded server nobody has used yet is "not started", which is not
a fault (it starts on first use, see `servers`). Any other server is asked for `SELECT 1`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from sqlalchemy import text

from playground.sandbox.engines import admin_engine
from playground.sandbox.servers import Server, configured

log = logging.getLogger(__name__)

UP, DOWN, NOT_STARTED = "up", "down", "not started"
ANSWER_WAIT_SECONDS = 2.0
"""How long `states_of` waits for all the servers together: a server that drops packets takes
the connection timeout to fail, longer than a container probe waits for /healthz."""


@dataclass(frozen=True)
class ServerState:
    name: str
    version: int
    state: str
    """UP, DOWN or NOT_STARTED."""

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "state": self.state}


def _not_started(server: Server) -> bool:
    """An embedded server that no process runs (this one or another)."""
    if server.url is not None or server.pgdata is None:
        return False
    from playground import embedded

    return not embedded.sandbox_server_running(server.pgdata)


def state_of(server: Server) -> ServerState:
    """`server`'s state: not started, answering `SELECT 1`, or down (the reason logged, not shown:
    /healthz answers anyone)."""
    if _not_started(server):
        return ServerState(server.name, server.version, NOT_STARTED)
    try:
        with admin_engine(server).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to answer is "down"; the probe must not fail with it
        log.warning("sandbox server %s does not answer: %s", server.name, exc)
        return ServerState(server.name, server.version, DOWN)
    return ServerState(server.name, server.version, UP)


def states() -> list[ServerState]:
    """Every configured sandbox server's state, `main` first."""
    return states_of(configured())


def states_of(servers: Sequence[Server]) -> list[ServerState]:
    """The state of each of `servers`, asked all at once; one that has not answered within
    ANSWER_WAIT_SECONDS is down (its probe goes on in the background until its connection times
    out, and is forgotten)."""
    if not servers:
        return []
    pool = ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="server-state")
    try:
        asked = [pool.submit(state_of, server) for server in servers]
        wait(asked, timeout=ANSWER_WAIT_SECONDS)
    finally:
        pool.shutdown(wait=False)
    found = []
    for server, future in zip(servers, asked, strict=True):
        if future.done() and future.exception() is None:
            found.append(future.result())
        else:
            log.warning("sandbox server %s gave no state in %g s", server.name, ANSWER_WAIT_SECONDS)
            found.append(ServerState(server.name, server.version, DOWN))
    return found
