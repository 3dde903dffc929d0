"""Sandboxes: one login role and one schema per browser session, in the sandbox database.

Isolation is Postgres' job, not the app's: recipes run over connections authenticated as the
sandbox's own role, which owns its schema and nothing else, may connect to the sandbox database
only, and carries its limits (timeouts, temp files, memory, connections) as role settings.
The role's password is derived from SECRET_KEY, so nothing secret is stored.

Callers use this package's names (`from playground import sandbox; sandbox.provision()`); where
each lives:

- `database`  the sandbox database: its URL, the role password, creating and locking it down
- `engines`   the admin engine, one pooled engine per recent sandbox, run slots, connection budget
- `roles`     a sandbox's role and schema: provision, reset, drop
- `servers`   the sandbox servers, each with its PostgreSQL version; the least loaded of a version
- `health`    each server's state (up, down, or an embedded one not started yet), starting nothing
- `admission` who gets a new sandbox (the instance's cap, each client address's share), and
              when an idle one is due
- `registry`  the registry rows: claim, touch, size and quota, reaping idle sandboxes
- `reaper`    the loop every web process runs to reap, one process at a time
- `errors`    the refusals (SandboxLimitError and its kinds), each with its HTTP status
"""

from __future__ import annotations

from playground.sandbox.admission import client_key, current_client
from playground.sandbox.database import ACL_LOCK, acl_lock, admin_url, role_password
from playground.sandbox.engines import (
    admin_engine,
    connection_budget,
    dispose_engines,
    engine_for,
    forget_admin_engine,
    forget_engine,
    reaching,
    run_slot,
)
from playground.sandbox.errors import (
    SandboxBusyError,
    SandboxesPerClientError,
    SandboxLimitError,
    SandboxQuotaError,
    SandboxServerDownError,
)
from playground.sandbox.reaper import Reaper, reap_once, reaper_lock
from playground.sandbox.registry import check_quota, claim, reap, size_bytes, touch
from playground.sandbox.roles import drop, provision, reset
from playground.sandbox.servers import (
    Server,
    UnknownServer,
    default_version,
    is_configured,
    named,
    names_of,
    versions,
)

__all__ = [
    "ACL_LOCK",
    "Reaper",
    "SandboxBusyError",
    "SandboxLimitError",
    "SandboxesPerClientError",
    "SandboxQuotaError",
    "SandboxServerDownError",
    "Server",
    "UnknownServer",
    "acl_lock",
    "admin_engine",
    "admin_url",
    "check_quota",
    "claim",
    "client_key",
    "connection_budget",
    "current_client",
    "default_version",
    "dispose_engines",
    "drop",
    "engine_for",
    "forget_admin_engine",
    "forget_engine",
    "is_configured",
    "named",
    "names_of",
    "provision",
    "reaching",
    "reap",
    "reap_once",
    "reaper_lock",
    "reset",
    "role_password",
    "run_slot",
    "size_bytes",
    "touch",
    "versions",
]
