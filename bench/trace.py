"""Where one warm run's time goes: every round trip to Postgres, and a profile of the request.

    python -m bench.trace                          # keyset-pagination/keyset, 200 warm requests
    python -m bench.trace offset-pagination offset --requests 300 --top 40
    python -m bench.trace offset-pagination offset --sql "SELECT count(*) FROM documents"

In-process, through Django's test client and the whole middleware stack, on the benchmark's own
server (see bench.environment), DEBUG off, each request preceded by what Django's WSGI handler
does when a request starts (`close_old_connections`), as under gunicorn. After warm-up requests
of one session it prints:

- the round trips of one request, in order, by who sent them (the app database, the sandbox
  administrator, the sandbox role), each with its median wall time over `--requests` requests:
  every statement, BEGIN, COMMIT and ROLLBACK the driver sent, counted on psycopg's own methods
  (a BEGIN, which psycopg sends by itself ahead of a transaction's first statement, is timed with
  that statement). Statements queued in a pipeline are listed as such, then the pipeline's sync,
  their one round trip; a pooled connection's reset (DISCARD ALL) is listed where it is sent, at
  checkin, and waited for by nobody;
- the time per request in-process (median) and how much of it was spent in round trips, the
  CPU time this process used per request (median: the Python side, which a busy machine moves
  far less than the wall time, since waiting for Postgres is not counted), then cProfile's
  functions by cumulative time over `--requests` more requests.

Counting is exact and does not depend on how loaded the machine is; the profile's shares do a
little, its absolute times more.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import threading
import time
from collections import Counter

QUEUED = "  queued: "
NOT_WAITED = "  not waited for: "
"""Lines that are not round trips of their own: statements queued in a pipeline (sent with its
sync), and the reset sent at checkin whose answer the next checkout reads."""


class RoundTrips:
    """Counts what psycopg sends, per connection user, while `active`."""

    def __init__(self) -> None:
        self.active = False
        self.sent: list[tuple[str, str, float]] = []
        """(sender, statement, wall ms) of each round trip."""
        self._inside = threading.local()

    def install(self) -> None:
        """Wrap psycopg's sending methods. COMMIT and ROLLBACK count only when a transaction is
        open (psycopg sends nothing otherwise); `Connection.execute` counts once, not again for
        the cursor it uses."""
        import psycopg
        from psycopg.pq import TransactionStatus

        def wrap(cls, name, describe, sends=lambda conn: True, opens=False):
            original = getattr(cls, name)

            def traced(obj, *args, **kwargs):
                conn = obj if isinstance(obj, psycopg.Connection) else obj.connection
                if not self.active or getattr(self._inside, "busy", False) or not sends(conn):
                    return original(obj, *args, **kwargs)
                self._inside.busy = True
                if conn._pipeline is not None:  # queued: the pipeline's sync is the round trip
                    self.sent.append((who(conn), QUEUED + describe(args), 0.0))
                    try:
                        return original(obj, *args, **kwargs)
                    finally:
                        self._inside.busy = False
                if opens and not conn.autocommit and not in_transaction(conn):
                    # psycopg opens the transaction with a BEGIN of its own, a round trip of
                    # its own before the statement's, timed here with the statement.
                    self.sent.append((who(conn), "BEGIN (psycopg's own, timed with the next line)", 0.0))
                started = time.perf_counter()
                try:
                    return original(obj, *args, **kwargs)
                finally:
                    self._inside.busy = False
                    self.sent.append((who(conn), describe(args), (time.perf_counter() - started) * 1000))

            setattr(cls, name, traced)

        def first_line(args):
            return " ".join(str(args[0]).split())[:100]

        def in_transaction(conn):
            return conn.pgconn.transaction_status != TransactionStatus.IDLE

        pipeline_exit = psycopg.Pipeline.__exit__

        def synced(pipeline, *args):
            started = time.perf_counter()
            try:
                return pipeline_exit(pipeline, *args)
            finally:
                if self.active:
                    took = (time.perf_counter() - started) * 1000
                    self.sent.append((who(pipeline._conn), "pipeline sync: the queued lines above", took))

        psycopg.Pipeline.__exit__ = synced
        from playground.running import engine

        send_discard = engine.send_discard

        def discard_sent(dbapi_connection, connection_record):
            if self.active and engine.RESET_DUE in connection_record.info:
                self.sent.append((who(dbapi_connection), NOT_WAITED + "DISCARD ALL, sent at checkin", 0.0))
            return send_discard(dbapi_connection, connection_record)

        engine.send_discard = discard_sent  # before any sandbox engine listens with it
        wrap(psycopg.Cursor, "execute", first_line, opens=True)
        wrap(psycopg.Cursor, "executemany", first_line, opens=True)
        wrap(psycopg.Connection, "execute", first_line, opens=True)
        # A server-side cursor (the scratchpad streams a SELECT's rows) talks on its own methods:
        # DECLARE on execute, FETCH on each fetch, CLOSE on close (psycopg sends none once the
        # transaction is over).
        wrap(psycopg.ServerCursor, "execute", lambda args: "DECLARE … CURSOR FOR " + first_line(args))
        wrap(psycopg.ServerCursor, "fetchmany", lambda args: f"FETCH FORWARD {args[0] if args else ''}")
        wrap(psycopg.ServerCursor, "fetchall", lambda args: "FETCH FORWARD ALL")
        wrap(psycopg.ServerCursor, "close", lambda args: "CLOSE (the cursor)", in_transaction)
        wrap(psycopg.Connection, "commit", lambda args: "COMMIT", in_transaction)
        wrap(psycopg.Connection, "rollback", lambda args: "ROLLBACK", in_transaction)


def who(conn) -> str:
    from playground import sandbox

    user = conn.info.user
    if user.startswith(("sbx", "sbxb")):
        return "sandbox role"
    return "sandbox admin" if user == sandbox.admin_url().username else f"app ({user})"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe", nargs="?", default="keyset-pagination")
    parser.add_argument("variant", nargs="?", default="keyset")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="cumulative", help="cProfile order: cumulative, tottime…")
    parser.add_argument(
        "--sql", help="trace POST /sql/run of this statement (the scratchpad), after one run of the recipe"
    )
    args = parser.parse_args(argv)

    import os

    os.environ["DEBUG"] = "0"
    os.environ["PLAYGROUND_HTTPS"] = "0"
    os.environ["ALLOWED_HOSTS"] = "testserver"
    from bench import environment

    environment.start()
    from django.db import close_old_connections
    from django.test import Client

    trips = RoundTrips()
    trips.install()
    client = Client()
    client.get("/api/recipes")
    run = (f"/api/recipes/{args.recipe}/run", json.dumps({"variant": args.variant, "params": {}}))
    path, body = ("/sql/run", json.dumps({"sql": args.sql})) if args.sql else run

    def post(path=path, body=body):
        # What Django's WSGI handler does on every request_started, and the test client leaves
        # out: app-database connections are health-checked (CONN_HEALTH_CHECKS) before their
        # first query of the request, as under gunicorn.
        close_old_connections()
        response = client.post(path, body, content_type="application/json", HTTP_ACCEPT="application/json")
        assert response.status_code == 200, response.content[:300]
        return response

    post(*run)  # the session's sandbox, the recipe's tables seeded

    try:
        for _ in range(20):
            post()
        times, cpu, trips_of = [], [], []
        for _ in range(args.requests):
            trips.sent = []
            trips.active = True
            started, used = time.perf_counter(), time.process_time()
            post()
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
            trips.active = False
            trips_of.append(trips.sent)
        shape = [(user, sql) for user, sql, _ in trips_of[-1]]
        same = [t for t in trips_of if [(u, q) for u, q, _ in t] == shape]
        what = f"POST /sql/run ({args.sql[:40]})" if args.sql else f"POST {path} ({args.variant})"
        print(f"\nRound trips of one warm {what},", end=" ")
        print("median ms of each")
        print(f"over the {len(same)} of {len(trips_of)} requests that sent exactly these:")
        for i, (user, sql) in enumerate(shape):
            ms = statistics.median(t[i][2] for t in same)
            print(f"{i + 1:>3} {ms:6.2f} ms  {user:<16} {sql}")
        waited = [u for u, q in shape if not q.startswith((QUEUED, NOT_WAITED))]
        print(f"{len(waited)} round trips waited for, by sender: ", end="")
        print(", ".join(f"{n} {k}" for k, n in Counter(waited).items()))
        in_trips = statistics.median(sum(ms for _, _, ms in t) for t in same)
        print(
            f"\nin-process time per request: median {statistics.median(times):.2f} ms over {len(times)}, "
            f"of which {in_trips:.2f} ms in round trips (median of the sums)"
        )
        print(
            f"CPU time of this process per request: median {statistics.median(cpu):.2f} ms "
            "(Python, psycopg and the system calls it makes; Postgres' own work is in other processes)"
        )
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.requests):
            post()
        profile.disable()
        print(f"\ncProfile over {args.requests} requests, by {args.sort}:")
        pstats.Stats(profile, stream=sys.stdout).sort_stats(args.sort).print_stats(args.top)
    finally:
        environment.drop_bench_sandboxes()


if __name__ == "__main__":
    main(sys.argv[1:])
