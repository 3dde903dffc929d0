"""Connection pool settings: size, overflow, timeout, pre-ping, recycle.

Reach for it when you create the engine of anything that serves more than one request at a time.
`pool_size` connections stay open; `max_overflow` more may be opened in a burst and are closed
when returned; a request that finds none free waits up to `pool_timeout` seconds and then fails.
`pool_pre_ping` tests a connection before lending it and quietly replaces one the server (or a
proxy, or a managed Postgres that drops idle sockets) has closed; `pool_recycle` retires
connections older than that many seconds. Every pool of every process counts against the
server's connection limit: with many short-lived processes, use NullPool behind a pooler.

Here the workers are threads that start at the same instant, each borrowing one connection and
holding it for `hold_ms`. This sandbox's role has a connection limit; the run refuses settings
that could exceed what is left of it.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import event, exc, text
from sqlalchemy.pool import NullPool, QueuePool

from recipes import params
from recipes.base import Param, Recipe, Rows
from recipes.learning import Challenge, Check, Question

APP = "recipe-pool"
"""application_name of the pool's connections, so the server's view counts only them."""
MAX_CONNECTIONS = 8
"""Most connections one run may open: the sandbox's limit minus what the playground keeps."""
HOLD = text("SELECT pg_backend_pid() FROM pg_sleep(:seconds)")


class ConnectionBudgetError(exc.SQLAlchemyError):
    """The run could open more connections than the sandbox role has left."""


recipe = Recipe(
    slug="connection-pool",
    title="Connection pool settings",
    section="Performance",
    summary=__doc__,
    params=(
        Param("pool_size", "int", 2, label="pool_size", min=1, max=10, help="Connections kept open."),
        Param("max_overflow", "int", 0, label="max_overflow", min=0, max=10, help="Extra ones for a burst."),
        Param("pool_timeout", "float", 1.0, label="pool_timeout (s)", min=0.05, max=10),
        Param("pool_pre_ping", "bool", False, label="pool_pre_ping"),
        Param("pool_recycle", "int", -1, label="pool_recycle (s)", min=-1, max=3600, help="-1 = never."),
        params.workers(4, max=10),
        Param(
            "hold_ms",
            "int",
            100,
            label="Hold (ms)",
            min=0,
            max=1000,
            help="How long each keeps its connection.",
        ),
        Param("poolclass", "choice", "queue", label="Pool class", choices=("queue", "null")),
    ),
    docs=(
        ("SQLAlchemy: connection pooling", "https://docs.sqlalchemy.org/en/20/core/pooling.html"),
        (
            "SQLAlchemy: dealing with disconnects",
            "https://docs.sqlalchemy.org/en/20/core/pooling.html#dealing-with-disconnects",
        ),
        (
            "PostgreSQL: pg_stat_activity",
            "https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW",
        ),
    ),
)


@recipe.guard
def limits(variant, p):
    if needed(variant, p) > MAX_CONNECTIONS:
        field = "workers" if variant == "null-pool" or p.poolclass == "null" else "max_overflow"
        return {
            field: f"This run could open {needed(variant, p)} connections; a sandbox run may open at most "
            f"{MAX_CONNECTIONS}. Lower workers, pool_size or max_overflow."
        }
    return {}


@recipe.setup
def prepare(setup, p):
    limit, open_now = setup.conn.execute(
        text(
            "SELECT rolconnlimit, (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user) "
            "FROM pg_roles WHERE rolname = current_user"
        )
    ).one()
    setup.prepared.update(role_limit=limit, open_before=open_now)


@recipe.helper
def needed(variant, p):
    """Connections the pool can open at most: NullPool opens one per worker."""
    if variant == "null-pool" or p.poolclass == "null":
        return p.workers
    return min(p.workers, p.pool_size + p.max_overflow)


@recipe.helper
def pool_options(run, p, poolclass):
    """create_engine() options for the chosen pool; refused if it could break the role's connection limit."""
    limit, open_before = run.prepared["role_limit"], run.prepared["open_before"]
    wanted = needed("null-pool" if poolclass == "null" else "", p)
    left = limit - open_before - 1 if limit >= 0 else wanted  # one kept for watching the server
    if wanted > left:
        raise ConnectionBudgetError(
            f"This run could open {wanted} connections, but the sandbox role may hold {limit} at once and "
            f"{open_before} are already open: {max(left, 0)} left. Lower workers, pool_size or max_overflow."
        )
    options = {
        "pool_pre_ping": p.pool_pre_ping,
        "pool_recycle": p.pool_recycle,
        "connect_args": {"application_name": APP},
    }
    if poolclass == "null":
        return {"poolclass": NullPool, **options}
    pool = {"pool_size": p.pool_size, "max_overflow": p.max_overflow, "pool_timeout": p.pool_timeout}
    return {"poolclass": QueuePool, **pool, **options}


@recipe.helper
def borrow(run, engine, p, line_up, opened):
    """One worker: wait for the others, borrow a connection, hold it for hold_ms, give it back."""
    line_up()
    slot = {"asked": time.perf_counter(), "got": None, "pid": None, "outcome": "ok"}
    try:
        with engine.connect() as conn:
            slot["got"] = time.perf_counter()
            slot["pid"] = conn.execute(run.main(HOLD), {"seconds": p.hold_ms / 1000}).scalar()
    except exc.TimeoutError as error:
        slot["outcome"] = f"timed out: {str(error).split('(Background')[0].strip()}"
    except exc.DBAPIError as error:
        slot["outcome"] = f"error: {str(error.orig).strip().splitlines()[0]}"
    slot["done"] = time.perf_counter()
    slot["new_connection"] = threading.get_ident() in opened
    return slot


@recipe.helper
def burst(run, p, engine):
    """All workers at once, each borrowing one connection; run.at_once captures their SQL with the run's."""
    opened = []
    event.listen(engine, "connect", lambda *args: opened.append(threading.get_ident()))
    with watching(run) as seen:
        workers = run.at_once(p.workers, lambda number, line_up: borrow(run, engine, p, line_up, opened))
    run.metric("connections_opened", len(opened))
    run.metric("peak_server_connections", max(seen, default=0))
    run.metric("pool_status", engine.pool.status())
    return timeline(run, [w.value if w.ok else never_lined_up(w) for w in workers])


@recipe.helper
def never_lined_up(worker):
    """The slot of a worker whose line-up broke before it could ask for a connection."""
    outcome = f"error: {type(worker.error).__name__}"
    return {"asked": worker.started, "got": None, "done": worker.finished, "pid": None, "outcome": outcome}


class watching:
    """Counts the pool's connections as pg_stat_activity shows them, every few ms, from outside."""

    def __init__(self, run):
        self.engine, self.seen, self.stop = run.engine, [], threading.Event()
        self.thread = threading.Thread(target=self.sample)  # a fresh context: not part of the capture

    def sample(self):
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                self.seen.append(
                    conn.execute(
                        text(  # every sandbox's backends are listed: count this role's own only
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE usename = current_user AND application_name = :app"
                        ),
                        {"app": APP},
                    ).scalar()
                )
                conn.rollback()  # the view is a per-transaction snapshot
                self.stop.wait(0.005)

    def __enter__(self):
        self.thread.start()
        return self.seen

    def __exit__(self, *exc_info):
        time.sleep(0.01)
        self.stop.set()
        self.thread.join()


@recipe.helper
def timeline(run, slots):
    """One row per worker (waited, held, outcome) and the timeline the page draws from them."""
    start = min(s["asked"] for s in slots)
    rows = []
    for i, s in enumerate(slots, 1):
        got = s["got"] or s["done"]
        waited = (got - s["asked"]) * 1000
        held = (s["done"] - s["got"]) * 1000 if s["got"] else 0.0
        rows.append((i, round(waited, 1), round(held, 1), s["new_connection"], s["pid"], s["outcome"]))
    run.metric(
        "timeline",  # drawn as a chart: [worker, asked, got (None = never), done], ms from the first ask
        [
            [i, *(round((t - start) * 1000, 2) if t else None for t in (s["asked"], s["got"], s["done"]))]
            for i, s in enumerate(slots, 1)
        ],
    )
    run.metric("waited_max_ms", max(r[1] for r in rows))
    run.metric("timed_out", sum(r[5].startswith("timed out") for r in rows))
    run.metric("errors", sum(r[5].startswith("error") for r in rows))
    return Rows(("worker", "waited ms", "held ms", "new connection", "backend pid", "outcome"), rows)


@recipe.variant(slug="burst")
def burst_(run, p):
    """Every worker asks for a connection at the same moment"""
    engine = run.engine_with(**pool_options(run, p, p.poolclass))  # create_engine() with the pool's options
    return burst(run, p, engine)


@recipe.variant
def dropped_connections(run, p):
    """The server closes the pool's idle connections, then the workers come back

    Like a managed Postgres or a proxy dropping idle sockets. Run it with and without pre-ping.
    """
    engine = run.engine_with(**pool_options(run, p, p.poolclass))
    held = [engine.connect() for _ in range(min(p.workers, p.pool_size))]
    pids = [conn.execute(text("SELECT pg_backend_pid()")).scalar() for conn in held]
    for conn in held:
        conn.close()  # back to the pool, idle
    with run.engine.connect() as admin:
        admin.execute(
            text("SELECT pg_terminate_backend(pid, 2000) FROM unnest(CAST(:pids AS int[])) AS pid"),
            {"pids": pids},
        )
    run.metric("connections_killed", len(pids))
    return burst(run, p, engine)


@recipe.variant
def null_pool(run, p):
    """NullPool: no pool at all, every checkout opens a new connection and closes it after"""
    engine = run.engine_with(**pool_options(run, p, "null"))  # poolclass=NullPool
    return burst(run, p, engine)


@recipe.notes
def notes(result):
    m = result.metrics
    if "peak_server_connections" not in m:
        return []
    workers = result.params["workers"]
    lines = [
        f"{workers} workers, {m['connections_opened']} new connection(s) opened; the server saw at most "
        f"{m['peak_server_connections']} of this pool's connections at once. Longest wait: "
        f"{m['waited_max_ms']:,.0f} ms."
    ]
    if m["timed_out"]:
        lines.append(
            f"{m['timed_out']} worker(s) gave up after pool_timeout={result.params['pool_timeout']} s: every "
            "connection was busy and the pool could not open another."
        )
    if "connections_killed" in m:
        if m["errors"]:
            lines.append(
                f"{m['connections_killed']} pooled connection(s) were closed by the server; {m['errors']} "
                "worker(s) got one anyway and failed on their first statement."
            )
        else:
            lines.append(
                f"{m['connections_killed']} pooled connection(s) were closed by the server, yet no worker "
                f"failed: {m['connections_opened']} fresh connection(s) replaced them before use."
            )
    return lines


# --- questions and challenges ---
recipe.learn(
    Question(
        "opened",
        "{workers} workers at once with pool_size={pool_size} and max_overflow={max_overflow}: how many "
        "connections will the pool open?",
        answer="metric:connections_opened",
        variant="burst",
    ),
    Question(
        "pre-ping",
        "The server drops the pool's idle connections. With pool_pre_ping={pool_pre_ping}, "
        "will a worker fail?",
        answer=lambda r: "yes" if r.metrics.get("errors") else "no",
        choices=("yes", "no"),
        variant="dropped-connections",
    ),
    Challenge(
        "no-timeouts",
        "{workers} workers each hold a connection {hold_ms} ms, and pool_timeout is {pool_timeout} s: "
        "serve them all with none timing out",
        checks=(Check("metric:timed_out", at_most=0), Check("errors", at_most=0)),
        params={"workers": 6, "hold_ms": 300, "pool_timeout": 0.2},
    ),
)
