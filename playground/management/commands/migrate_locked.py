"""`migrate` under a Postgres advisory lock, so that containers starting together take turns.

Django's own `migrate` takes no lock: two instances starting at once may both try to create the
same table. Here the first to start holds a transaction-level advisory lock on a connection of its
own for as long as `migrate` runs; the others wait, then find nothing left to apply. A transaction
lock (not a session one) keeps this correct behind PgBouncer in transaction mode too, since an
open transaction pins its server connection.
"""

from __future__ import annotations

import time

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

LOCK_KEY = 7_301_957_206_345_321_569
"""Any 64-bit number every instance agrees on; this one spells nothing in particular."""


class Command(BaseCommand):
    help = "Apply migrations while holding a Postgres advisory lock (safe with many instances)."

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default")

    def handle(self, *args, database="default", verbosity=1, **options):
        holder = connections.create_connection(database)
        raw = holder.get_new_connection(holder.get_connection_params())
        try:
            started = time.monotonic()
            raw.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
            waited = time.monotonic() - started
            if verbosity and waited > 1:
                self.stdout.write(f"waited {waited:.1f}s for another instance's migrations")
            call_command("migrate", database=database, interactive=False, verbosity=verbosity)
            raw.commit()
        finally:
            raw.close()
