"""Refusals counted per minute, in one row per minute of the app database.

Counting must stay cheap and must never turn a refusal into a crash: one upsert per refused
answer, and when the app database itself is what failed (a 503 because it does not answer) the
count is simply lost. Rows older than a day are forgotten by the reaper's pass.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import DatabaseError, connection
from django.utils import timezone

from playground.models import MinuteTally

log = logging.getLogger(__name__)

COLUMNS = {429: "too_many", 503: "unavailable"}
"""The statuses counted, and the column each is counted in."""
KEPT = timedelta(days=1)


def this_minute(now: datetime | None = None) -> datetime:
    return (now or timezone.now()).replace(second=0, microsecond=0)


def count(status: int) -> None:
    """Add one answer of `status` to this minute's row (nothing for a status not counted)."""
    column = COLUMNS.get(status)
    if column is None:
        return
    table = connection.ops.quote_name(MinuteTally._meta.db_table)
    sql = (
        f"INSERT INTO {table} (minute, too_many, unavailable) VALUES (%s, %s, %s) "
        f"ON CONFLICT (minute) DO UPDATE SET {column} = {table}.{column} + 1"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, [this_minute(), int(column == "too_many"), int(column == "unavailable")])
    except DatabaseError as exc:  # the app database is what refused: nothing to count in
        log.debug("refusal not counted: %s", exc)


def per_minute(minutes: int = 10, now: datetime | None = None) -> list[MinuteTally]:
    """The last `minutes` whole minutes and the current one, oldest first, empty ones included."""
    end = this_minute(now)
    start = end - timedelta(minutes=minutes)
    found = {row.minute: row for row in MinuteTally.objects.filter(minute__gte=start, minute__lte=end)}
    return [
        found.get(start + timedelta(minutes=i)) or MinuteTally(minute=start + timedelta(minutes=i))
        for i in range(minutes + 1)
    ]


def forget_old(now: datetime | None = None) -> int:
    """Drop the rows older than a day; return how many went."""
    deleted, _ = MinuteTally.objects.filter(minute__lt=(now or timezone.now()) - KEPT).delete()
    return deleted
