"""Who gets a new sandbox, and how long an idle one is kept.

- `admit`: the instance's cap and each client address's share, counted and claimed in one
  transaction under an advisory lock, so that any number of concurrent requests, workers or
  instances never make one sandbox more than allowed.
- `current_client`: the client address of the request being served (set by
  `playground.web.access.ClientAddressMiddleware`); `client_key` turns an address into the key
  counted (an IPv6 client is one /64: a single host usually holds the whole network).
- `expiry`: when a sandbox may be reaped. Idle time allowed grows with use: one used once and
  left goes after SANDBOX_IDLE_SECONDS_PER_USE, a busy one stays up to SANDBOX_IDLE_SECONDS.
"""

from __future__ import annotations

import ipaddress
import math
from contextvars import ContextVar
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, QuerySet, Value
from django.db.models.aggregates import Count, Min
from django.db.models.functions import Least
from django.utils import timezone

from playground.conf import setting
from playground.models import Sandbox
from playground.sandbox import servers
from playground.sandbox.errors import SandboxesPerClientError, SandboxLimitError

ADMISSION_LOCK = 0x5B0C_AD17
"""Advisory lock key (transaction level) around counting sandboxes and claiming a new one."""

current_client: ContextVar[str] = ContextVar("current_client", default="")
"""The key (see `client_key`) of the client whose request is being served; empty outside one."""


def client_key(address: str) -> str:
    """What the per-client limit counts: the IPv4 address, or the /64 network of an IPv6 one."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def expiry() -> ExpressionWrapper:
    """When a sandbox is due to be reaped: last use + SANDBOX_IDLE_SECONDS_PER_USE x uses,
    at most SANDBOX_IDLE_SECONDS later."""
    per_use = Value(timedelta(seconds=setting("SANDBOX_IDLE_SECONDS_PER_USE")), DurationField())
    most = Value(timedelta(seconds=setting("SANDBOX_IDLE_SECONDS")), DurationField())
    allowed = Least(ExpressionWrapper(F("uses") * per_use, output_field=DurationField()), most)
    return ExpressionWrapper(F("last_used_at") + allowed, output_field=DateTimeField())


def admit(role: str, client: str, version: int) -> Sandbox:
    """The registry row of a new sandbox `role` for `client` on the least-loaded server of
    `version`, or a refusal saying when to retry.

    The counts and the insert are one transaction holding ADMISSION_LOCK, so the cap holds under
    any concurrency (a transaction lock also holds behind PgBouncer in transaction mode). The
    caller creates the role and schema afterwards, and removes the row if that fails.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADMISSION_LOCK])
        if Sandbox.objects.count() >= setting("MAX_SANDBOXES"):
            raise SandboxLimitError(
                "This playground is full: every sandbox slot is in use. Try again in a while.",
                retry_after=seconds_until_one_expires(Sandbox.objects.all()),
            )
        share = setting("SANDBOXES_PER_CLIENT")
        mine = Sandbox.objects.filter(client=client)
        if client and share and mine.count() >= share:
            wait = seconds_until_one_expires(mine)
            raise SandboxesPerClientError(
                f"Too many sandboxes for one address: yours already holds {share}, the most one "
                "address may hold. Keep using the one you have (a client that keeps its cookies "
                f"keeps its sandbox), or try again in {math.ceil(wait / 60)} min, when an unused "
                "one has been dropped.",
                retry_after=wait,
            )
        counts = dict(Sandbox.objects.values_list("server").annotate(n=Count("id")).order_by())
        server = servers.least_loaded(version, counts)
        return Sandbox.objects.create(
            role=role, client=client, last_used_at=timezone.now(), uses=1, server=server.name
        )


def seconds_until_one_expires(boxes: QuerySet[Sandbox]) -> int:
    """Seconds until the first of `boxes` is due to be reaped, plus one reaping interval."""
    first = boxes.aggregate(first=Min(expiry()))["first"]
    due = (first - timezone.now()).total_seconds() if first else 0
    return max(1, math.ceil(due + (setting("REAP_EVERY_SECONDS") or 60)))
