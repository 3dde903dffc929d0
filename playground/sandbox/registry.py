"""The registry of sandboxes (rows in the app database): claiming one, marking it in use,
measuring it against its quota, and reaping the idle ones."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from playground.conf import setting
from playground.models import RunAllowance, Sandbox
from playground.ops import tally
from playground.sandbox.admission import expiry
from playground.sandbox.engines import admin_engine, reaching
from playground.sandbox.errors import SandboxQuotaError, SandboxServerDownError
from playground.sandbox.roles import drop
from playground.sandbox.servers import UnknownServer, named

log = logging.getLogger(__name__)


def claim(role: str) -> Sandbox | None:
    """The registry row of `role`, marked as in use in the same statement; None if it is gone.

    A reaper holds the row locked while it drops the sandbox, so this waits for it and then
    finds nothing.
    """
    now = timezone.now()
    table = connection.ops.quote_name(Sandbox._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_used_at = %s, uses = uses + 1 WHERE role = %s "
            "RETURNING id, created_at, client, uses, server",
            [now, role],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return Sandbox(
        id=row[0], role=role, created_at=row[1], last_used_at=now, client=row[2], uses=row[3], server=row[4]
    )


def touch(sandbox: Sandbox) -> bool:
    """Mark the sandbox as in use; False when it no longer exists (a reaper dropped it).

    A reaper holds the registry row locked while it drops the sandbox, so this update waits for
    it and then finds no row: the caller provisions a new sandbox instead of using a dead one.
    """
    sandbox.last_used_at = timezone.now()
    return bool(Sandbox.objects.filter(pk=sandbox.pk).update(last_used_at=sandbox.last_used_at))


# --- size and quota -------------------------------------------------------------------------
def size_bytes(sandbox: Sandbox) -> int:
    """Space taken by the sandbox's tables, their indexes and TOAST data.

    Measuring takes a share lock on each table; a sandbox holding a table locked (a run of
    another tab, an abandoned transaction) must not stall the request, so after a short wait
    this falls back to the page counts the catalog keeps (exact after ANALYZE, which seeding runs).
    The short wait is set by the measuring statement itself, for its own implicit transaction
    (`set_config(..., true)` on this autocommit connection): one round trip, nothing to reset.
    """
    server = named(sandbox.server)
    with reaching(server), admin_engine(server).connect() as conn:
        try:
            return int(conn.execute(text(_EXACT_SIZE), {"r": sandbox.role}).scalar_one())
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":
                raise
            return int(conn.execute(text(_ESTIMATED_SIZE), {"r": sandbox.role}).scalar_one())


# The one-row subquery is evaluated before the join yields its first row, so the lock timeout is
# in force before the first table is locked.
_EXACT_SIZE = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
FROM (SELECT set_config('lock_timeout', '200ms', true)) AS short_wait,
     pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :r AND c.relkind IN ('r', 'm', 'p')
"""
_ESTIMATED_SIZE = """
SELECT coalesce(sum(c.relpages::bigint), 0) * current_setting('block_size')::bigint FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :r
"""


def check_quota(sandbox: Sandbox) -> int:
    """Refuse to run in a sandbox already over its size quota; return its size otherwise."""
    size, quota = size_bytes(sandbox), setting("SANDBOX_MAX_BYTES")
    if size > quota:
        raise SandboxQuotaError(
            f"Over quota: this sandbox holds {size / 2**20:,.0f} MB of tables, more than the "
            f"{quota / 2**20:,.0f} MB each sandbox may use. Press Reset (its tables are dropped and "
            "re-seeded on the next run), then use smaller sizes."
        )
    return size


# --- reaping --------------------------------------------------------------------------------
def reap(idle_seconds: int | None = None) -> list[str]:
    """Drop sandboxes due (see `admission.expiry`), or idle for longer than `idle_seconds` when
    given; safe to run from many processes.

    Each candidate row is locked with SKIP LOCKED, so two reapers never pick the same sandbox,
    and a sandbox whose role has a session that is not idle (a query running, a transaction
    open) is left alone. A request touching the sandbox meanwhile waits on the row lock and,
    finding the row gone, provisions a new sandbox (see `touch`). Sandboxes on every server are
    reaped; one whose server does not answer (or is no longer configured) waits for a later pass.
    """
    now = timezone.now()
    if idle_seconds is None:
        due = Sandbox.objects.alias(expires_at=expiry()).filter(expires_at__lt=now)
    else:
        due = Sandbox.objects.filter(last_used_at__lt=now - timedelta(seconds=idle_seconds))
    # Run allowances untouched for an hour are full again: forgetting them changes nothing.
    RunAllowance.objects.filter(updated_at__lt=now - timedelta(hours=1)).delete()
    tally.forget_old(now)
    dropped: list[str] = []
    seen: list[str] = []
    while True:
        with transaction.atomic():
            sandbox = (
                due.select_for_update(skip_locked=True)
                .exclude(role__in=seen)
                .order_by("last_used_at")
                .first()
            )
            if sandbox is None:
                return dropped
            seen.append(sandbox.role)
            try:
                if _busy(sandbox):
                    continue
                drop(sandbox)
            except SandboxServerDownError as exc:
                log.warning("cannot reap sandbox %s now: %s", sandbox.role, exc)
                continue
            except UnknownServer:  # its server was taken off the list: only its row is ours
                Sandbox.objects.filter(pk=sandbox.pk).delete()
                dropped.append(sandbox.role)
                log.warning(
                    "forgot sandbox %s: its server %r is no longer listed", sandbox.role, sandbox.server
                )
                continue
            dropped.append(sandbox.role)
            log.info("reaped sandbox %s", sandbox.role)


def _busy(sandbox: Sandbox) -> bool:
    server = named(sandbox.server)
    with reaching(server), admin_engine(server).connect() as conn:
        return bool(
            conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE usename = :r AND state <> 'idle'"),
                {"r": sandbox.role},
            ).scalar()
        )
