"""Django's database sessions, read by one plain SELECT.

Every request that touches its session reads the row first: in the ORM (a QuerySet, its filter,
the compiled SELECT, a model instance) that cost about 0.4 ms of Python on top of the round trip,
on every run (docs/performance.md). The SELECT is the ORM's (the row of this key, unexpired);
writing, creating and deleting sessions are Django's own.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> AbstractBaseSession | None:
        """The session's row while unexpired; else None, and the key is dropped (a new one is
        made on save), as `db.SessionStore` does."""
        model = self.model
        database = connections[router.db_for_read(model)]
        table = database.ops.quote_name(model._meta.db_table)
        with database.cursor() as cursor:
            cursor.execute(
                f"SELECT session_data FROM {table} WHERE session_key = %s AND expire_date > %s",
                [self.session_key, timezone.now()],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return model(session_key=self.session_key, session_data=row[0])
