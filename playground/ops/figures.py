"""The figures an operator sizes an instance by, read fresh on each visit of the status page.

Each is one cheap query: counts over indexed columns of the app database, and two catalog reads
on the sandbox server (`pg_database_size`, `pg_stat_activity`), and a `SELECT 1` on each sandbox
server for its state (`sandbox.health`). The connection budget is the one
`connection_budget` promises for this instance's gunicorn settings (WEB_CONCURRENCY x
GUNICORN_THREADS, as gunicorn.conf.py reads them): connections in use above it mean another
instance, or another client, shares the server.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone
from sqlalchemy import text

from playground import sandbox
from playground.conf import setting
from playground.models import Room, Run, Sandbox
from playground.ops import tally
from playground.sandbox import health, servers

WINDOW_MINUTES = 10
"""Rates are averaged over this many minutes (and shown minute by minute)."""


@dataclass(frozen=True)
class Minute:
    """One minute of the recent past: runs started, refusals answered."""

    label: str
    runs: int
    too_many: int
    unavailable: int


@dataclass(frozen=True)
class ServerLoad:
    """One sandbox server on the status page: its state and the sandboxes the registry puts there."""

    name: str
    version: int
    state: str
    sandboxes: int

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Status:
    sandboxes: int
    max_sandboxes: int
    sandbox_database_bytes: int
    connections: int
    """Client connections open on the sandbox server right now (every database on it)."""
    connection_budget: int
    """Most connections this instance's processes can open (`connection_budget`)."""
    max_connections: int
    """The server's own limit."""
    rooms_open: int
    runs_total: int
    minutes: list[Minute]
    """Oldest first; the last is the minute in progress."""
    servers: list[ServerLoad]
    """Every sandbox server, `main` first."""

    @property
    def runs_per_minute(self) -> float:
        return _average(m.runs for m in self.minutes[:-1])

    @property
    def too_many_per_minute(self) -> float:
        return _average(m.too_many for m in self.minutes[:-1])

    @property
    def unavailable_per_minute(self) -> float:
        return _average(m.unavailable for m in self.minutes[:-1])

    def percent(self, used: int, of: int) -> int:
        return round(100 * used / of) if of else 0

    @property
    def sandboxes_percent(self) -> int:
        return self.percent(self.sandboxes, self.max_sandboxes)

    @property
    def connections_percent(self) -> int:
        return self.percent(self.connections, self.connection_budget)

    def to_json(self) -> dict:
        return {
            "sandboxes": {"live": self.sandboxes, "cap": self.max_sandboxes},
            "sandbox_database_bytes": self.sandbox_database_bytes,
            "connections": {
                "in_use": self.connections,
                "budget": self.connection_budget,
                "server_max": self.max_connections,
            },
            "rooms_open": self.rooms_open,
            "runs_kept": self.runs_total,
            "per_minute": {
                "runs": self.runs_per_minute,
                "refused_429": self.too_many_per_minute,
                "refused_503": self.unavailable_per_minute,
            },
            "minutes": [m.__dict__ for m in self.minutes],
            "servers": [s.to_json() for s in self.servers],
        }


def _average(values) -> float:
    values = list(values)
    return round(sum(values) / len(values), 1) if values else 0.0


def instance_budget() -> int:
    workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
    threads = int(os.environ.get("GUNICORN_THREADS", "2"))
    return sandbox.connection_budget(workers, threads)


_SERVER = """
SELECT pg_database_size(current_database()),
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
       current_setting('max_connections')::int
"""


def runs_by_minute(minutes: int) -> dict:
    """Minute → runs started in it, for the last `minutes` minutes and the current one."""
    start = tally.this_minute() - timedelta(minutes=minutes)
    rows = (
        Run.objects.filter(created_at__gte=start)
        .annotate(minute=TruncMinute("created_at"))
        .values("minute")
        .annotate(runs=Count("id"))
        .order_by()
    )
    return {row["minute"]: row["runs"] for row in rows}


def server_loads() -> list[ServerLoad]:
    """Each sandbox server's state (an embedded one nobody used yet is not started by asking) and
    its sandboxes; rows naming no server live on `main`."""
    counts = Counter()
    for row in Sandbox.objects.values("server").annotate(n=Count("id")).order_by():
        counts[row["server"] or servers.MAIN] += row["n"]
    return [ServerLoad(s.name, s.version, s.state, counts[s.name]) for s in health.states()]


def current(minutes: int = WINDOW_MINUTES) -> Status:
    with sandbox.admin_engine().connect() as conn:
        size, connections, max_connections = conn.execute(text(_SERVER)).one()
    runs = runs_by_minute(minutes)
    rows = [
        Minute(
            label=f"{row.minute:%H:%M}",
            runs=runs.get(row.minute, 0),
            too_many=row.too_many,
            unavailable=row.unavailable,
        )
        for row in tally.per_minute(minutes)
    ]
    return Status(
        sandboxes=Sandbox.objects.count(),
        max_sandboxes=setting("MAX_SANDBOXES"),
        sandbox_database_bytes=int(size),
        connections=int(connections),
        connection_budget=instance_budget(),
        max_connections=int(max_connections),
        rooms_open=Room.objects.filter(expires_at__gt=timezone.now()).count(),
        runs_total=Run.objects.count(),
        minutes=rows,
        servers=server_loads(),
    )
