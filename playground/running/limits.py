"""Limits a person can run into, and the plain words they get when they do.

- `spend_runs` / `take_runs`: the per-session run rate (a token bucket in the app database, so that every
  worker and every instance behind a load balancer sees the same count); a room member's runs
  draw from the room's bucket, sized for its members (`allowance`).
- `pay_for_sweep`: a sweep pays for all its points before the first one runs, never midway.
- `explain_error`: a database error from a run (a timeout, a limit, a restart) gets a sentence
  saying what happened and what to do, in front of the server's own message.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from playground.conf import setting
from playground.models import Member, RunAllowance
from playground.running import joined

# --- run rate -------------------------------------------------------------------------------
_TAKE = """
INSERT INTO {table} AS b (key, tokens, allowed, updated_at)
VALUES (%(key)s, %(burst)s - %(cost)s, true, statement_timestamp())
ON CONFLICT (key) DO UPDATE SET
    tokens = CASE WHEN {refill} >= %(cost)s THEN {refill} - %(cost)s ELSE {refill} END,
    allowed = {refill} >= %(cost)s,
    updated_at = statement_timestamp()
RETURNING allowed, tokens
"""
_REFILL = (
    "LEAST(%(burst)s::float8, b.tokens "
    "+ EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at)::float8 * %(rate)s)"
)


ROOMS_KEY = joined.ROOMS_KEY


@dataclass(frozen=True)
class Allowance:
    """The bucket a session's runs are drawn from: its own, or its room's while it is in one.

    A room's bucket is sized for the room, `RUN_BURST` and `RUNS_PER_MINUTE` times its members: a
    room of 30 behind one address runs like 30 people, and a participant who follows the trainer
    closely is not refused while the room as a whole has runs to spare.
    """

    key: str
    people: int
    """1 for a session alone; a room's member count."""

    @property
    def burst(self) -> int:
        return setting("RUN_BURST") * self.people

    @property
    def rate(self) -> float:
        """Runs per second."""
        return setting("RUNS_PER_MINUTE") * self.people / 60

    def describe(self) -> str:
        whose = "this session" if self.people == 1 else f"this room of {self.people}"
        return f"{whose} may start {self.burst} runs in a row, then {round(self.rate * 60)} a minute"


def allowance(session) -> Allowance:
    """This session's bucket: the open room it joined last, if any, else its own."""
    room = joined.latest(session)  # loads the session: a bad key is dropped
    if session.session_key is None:
        session.save()  # a first request: give the session its key now
    if room is not None:
        return Allowance(f"room:{room.room}", max(1, Member.objects.filter(room_id=room.room).count()))
    return Allowance(session.session_key, 1)


def take_runs(session, cost: int = 1) -> float | None:
    """Spend `cost` runs of this session's allowance: None when allowed, else seconds to wait.

    One atomic upsert: concurrent requests of a session (several workers) serialize on its row.
    """
    pool = allowance(session)
    allowed, tokens = _take(pool, cost)
    return None if allowed else _wait(pool, min(cost, pool.burst), tokens)


def _take(pool: Allowance, cost: int) -> tuple[bool, float]:
    """(allowed, runs left in the bucket) after asking for `cost` runs."""
    cost = min(cost, pool.burst)
    sql = _TAKE.format(table=_table(), refill=_REFILL)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"key": pool.key, "burst": pool.burst, "cost": cost, "rate": pool.rate})
        allowed, tokens = cursor.fetchone()
    return allowed, tokens


def _wait(pool: Allowance, cost: int, tokens: float) -> float:
    return math.ceil((cost - tokens) / pool.rate) if pool.rate > 0 else 3600.0


def _table() -> str:
    return connection.ops.quote_name(RunAllowance._meta.db_table)


_GROW = "UPDATE {table} SET tokens = tokens + %(runs)s WHERE key = %(key)s"


def room_grew(room_id: int) -> None:
    """A member joined: the room's bucket holds one more person's burst at once, not only after
    it refills at the larger rate (its cap grows with the count, see `Allowance`)."""
    with connection.cursor() as cursor:
        cursor.execute(_GROW.format(table=_table()), {"key": f"room:{room_id}", "runs": setting("RUN_BURST")})


class TooManyRuns(Exception):
    """This session (or its room) has spent its run allowance for now."""

    def __init__(self, pool: Allowance, wait: float, *, needed: int = 1, available: float | None = None):
        super().__init__(rate_message(pool, wait, needed=needed, available=available))
        self.wait = wait
        """Seconds until the allowance has refilled enough."""


def spend_runs(session, cost: int = 1) -> None:
    """Spend `cost` runs of this session's allowance, or raise `TooManyRuns`."""
    pool = allowance(session)
    allowed, tokens = _take(pool, cost)
    if not allowed:
        cost = min(cost, pool.burst)
        raise TooManyRuns(pool, _wait(pool, cost, tokens), needed=cost, available=tokens)


# --- a sweep: paid as a whole, before its first point -----------------------------------------
_DRAW = """
UPDATE {table} SET tokens = tokens - %(cost)s, updated_at = statement_timestamp()
WHERE key = %(key)s AND tokens >= %(cost)s
RETURNING tokens
"""


def pay_for_sweep(session, sweep: uuid.UUID, *, now: int, later: int) -> None:
    """Pay for the `now` runs of a sweep's request, and for the `later` runs of its points to come.

    The first request of a sweep spends `now + later` of the session's allowance at once (or raises
    `TooManyRuns` before anything runs), and keeps `later` as the sweep's credit; each next point is
    drawn from that credit, so a sweep that started never stops midway for want of runs. A request
    that finds no credit left (a point asked twice) pays again for every point still to come.

    The credit is a row of the allowance table keyed by the sweep: one atomic UPDATE draws from it,
    so concurrent requests cannot spend it twice, and it goes with the stale buckets an hour on.
    """
    key = f"sweep:{sweep}"
    with connection.cursor() as cursor:
        cursor.execute(_DRAW.format(table=_table()), {"key": key, "cost": now})
        if cursor.fetchone() is not None:
            return
    spend_runs(session, now + later)
    if later:
        RunAllowance.objects.update_or_create(
            key=key, defaults={"tokens": later, "allowed": True, "updated_at": timezone.now()}
        )


_REFUND = """
UPDATE {table} SET tokens = LEAST(%(burst)s::float8, tokens + %(runs)s) WHERE key = %(key)s
"""


def refund_sweep(session, sweep: uuid.UUID, *, unused: int) -> None:
    """Give back what a stopped sweep paid for and will not run: its credit, and the `unused` runs
    of the request that stopped it, so that trying again soon is not refused for want of runs."""
    credit = RunAllowance.objects.filter(key=f"sweep:{sweep}")
    left = credit.values_list("tokens", flat=True).first() or 0.0
    credit.delete()
    pool = allowance(session)
    params = {"key": pool.key, "runs": left + unused, "burst": pool.burst}
    with connection.cursor() as cursor:
        cursor.execute(_REFUND.format(table=_table()), params)


def sweep_credit(sweep: uuid.UUID) -> float:
    """Runs a sweep has paid for and not yet used."""
    found = RunAllowance.objects.filter(key=f"sweep:{sweep}").values_list("tokens", flat=True).first()
    return found or 0.0


def rate_message(pool: Allowance, wait: float, *, needed: int = 1, available: float | None = None) -> str:
    allowance = pool.describe()
    if needed > 1 and available is not None:
        return (
            f"Not enough runs left: this needs {needed} runs and the allowance holds "
            f"{math.floor(max(available, 0))} right now ({allowance}). Nothing ran. "
            f"Try again in {wait:.0f} s, or ask for fewer."
        )
    return f"Too many runs: {allowance}. Try again in {wait:.0f} s."


# --- what a database error means to the person ----------------------------------------------
_SQLSTATE = re.compile(r"SQLSTATE ([0-9A-Z]{5})")
_DISCONNECTED = (
    "server closed the connection",
    "terminating connection",
    "connection failed",
    "consuming input failed",
    "the connection is lost",
    "connection is closed",
    "connection refused",
    "no such file or directory",
    "the database system is",
)


_SERVER_FULL = ("remaining connection slots are reserved", "too many clients already")


def _hints() -> dict[str, str]:
    return {
        "timeout": (
            f"The statement ran longer than the sandbox's statement timeout "
            f"({setting('STATEMENT_TIMEOUT_MS') / 1000:g} s) and was cancelled; the sandbox is fine. "
            "Try smaller sizes."
        ),
        "57014": "The statement was cancelled; the transaction was rolled back.",
        "55P03": (
            f"The statement waited longer than the lock timeout "
            f"({setting('LOCK_TIMEOUT_MS') / 1000:g} s) for a lock another session holds; "
            "the transaction was rolled back."
        ),
        "25P03": (
            f"A transaction stayed idle longer than "
            f"{setting('IDLE_IN_TRANSACTION_TIMEOUT_MS') / 1000:g} s, so the server closed its "
            "connection; the transaction was rolled back and the connection discarded."
        ),
        "53400": (
            f"The run needed more than the sandbox's limit ({setting('TEMP_FILE_LIMIT')} of temporary "
            "files for sorts and hashes); it was stopped and rolled back. Try smaller sizes."
        ),
        "53300": (
            f"This sandbox already holds its {setting('CONNECTION_LIMIT')} connections (its connection "
            "limit); wait for the other runs to finish or use fewer workers."
        ),
        "53100": "The database server is out of disk space; the run was rolled back.",
        "server_full": (
            "The database server has no connection left for sandboxes right now (every slot is "
            "taken by runs in progress); nothing ran. Try again in a few seconds."
        ),
        "disconnected": (
            "The connection to the database was lost (the server restarted, or the session was "
            "terminated): the transaction was rolled back and the connection discarded. "
            "Run again in a moment."
        ),
    }


def explain_error(message: str | None) -> str | None:
    """`message` with a plain-words explanation in front, when it is a known limit or fault."""
    if not message:
        return message
    match = _SQLSTATE.search(message)
    code = match.group(1) if match else None
    lowered = message.lower()
    hints = _hints()
    if code == "57014" and "statement timeout" in lowered:
        key = "timeout"
    elif "too many connections for role" in lowered:  # refused at login: no SQLSTATE attached
        key = "53300"
    elif any(s in lowered for s in _SERVER_FULL):  # the server's slots, not the role's limit
        key = "server_full"
    elif code in hints:
        key = code
    elif (code and code[:2] in {"08", "57"}) or any(s in lowered for s in _DISCONNECTED):
        key = "disconnected"
    else:
        return message
    return f"{hints[key]} ({message})"


def unavailable_message(exc: BaseException) -> str:
    """For a request that could not reach a database at all."""
    detail = str(exc).split("(Background on this error")[0].strip().splitlines()
    return (
        "The database is not answering right now (it may be restarting); nothing was run. "
        f"Try again in a few seconds. ({type(exc).__name__}: {detail[0] if detail else ''})"
    )
