"""How much the playground adds on top of Postgres: each figure beside its reference, one run.

    python -m bench                  # every figure, a few minutes on a small machine
    python -m bench --quick          # fewer repetitions and 200 memory runs, for a smoke test
    python -m bench --only capture,honesty

Without DATABASE_URL it starts a dedicated embedded Postgres in `.pgdata-bench/` (override with
PLAYGROUND_PGDATA) and migrates it, so it never disturbs a development server. Its sandboxes
carry the `sbxb_` role prefix and are dropped at the end.

Each figure, what the playground side measures, and the reference it is compared with:

- capture: a variant's time inside `runner.run` (listeners on, capture active) / the same variant
  function on a second engine of the same sandbox without listeners; interleaved, same process.
- http: `POST /api/recipes/<slug>/run` on gunicorn, one warm session, client wall time / the
  statements that run sent (its queries and both EXPLAINs) replayed with psycopg as the sandbox
  role on a warm connection.
- cold: a new session's first run over HTTP (role + schema, seeding the default dataset, the run)
  / the same rows and index typed by hand in the same role: CREATE TABLE, INSERT … SELECT
  generate_series, CREATE INDEX, ANALYZE, in one transaction.
- honesty: the main statement's duration_ms as shown / Planning + Execution Time of
  EXPLAIN (ANALYZE, TIMING OFF) of the same statement.
- memory: the web worker's RSS after 1,000 runs across every recipe and variant (small sizes,
  six sessions) / the same worker's RSS after its first run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROLE_PREFIX = "sbxb_"
SMALL = {"rows": "min", "hold_ms": 10}
"""Parameter overrides of the memory figure's runs: the smallest tables, short pool holds."""


# --- statistics and the table ---------------------------------------------------------------
def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def spread(values: list[float], unit: str = "ms") -> str:
    """Median [p25–p75] of repeated measurements."""
    return (
        f"{statistics.median(values):.2f} {unit} [{quantile(values, 0.25):.2f}–{quantile(values, 0.75):.2f}]"
    )


@dataclass
class Figure:
    name: str
    playground: str
    reference: str
    result: str
    target: str
    met: bool
    details: list[str] = field(default_factory=list)


def print_table(figures: list[Figure]) -> None:
    header = ("figure", "playground: median [p25–p75]", "reference: median [p25–p75]", "result", "target", "")
    rows = [header] + [
        (f.name, f.playground, f.reference, f.result, f.target, "met" if f.met else "MISSED") for f in figures
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print()
    for i, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for f in figures:
        for line in f.details:
            print(f"  {f.name}: {line}")


# --- environment ------------------------------------------------------------------------------
def configure_environment() -> None:
    """A dedicated embedded server unless DATABASE_URL names one; generous run allowances."""
    if not os.environ.get("DATABASE_URL"):
        os.environ.setdefault("PLAYGROUND_PGDATA", str(ROOT / ".pgdata-bench"))
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "k" * 50)
    os.environ["PLAYGROUND_ROLE_PREFIX"] = ROLE_PREFIX
    os.environ["PLAYGROUND_RUN_BURST"] = "1000000"
    os.environ["PLAYGROUND_RUNS_PER_MINUTE"] = "1000000"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    sys.path.insert(0, str(ROOT))


def drop_bench_sandboxes() -> None:
    from playground import sandbox
    from playground.models import Sandbox

    for box in Sandbox.objects.filter(role__startswith=ROLE_PREFIX):
        sandbox.drop(box)


def role_connection(role: str):
    """A psycopg connection logged in as a sandbox role, planned afresh like the playground's."""
    import psycopg

    from playground import sandbox

    url = sandbox.admin_url()
    kwargs = {
        "host": url.query.get("host") or url.host,
        "port": url.port,
        "dbname": url.database,
        "user": role,
        "password": sandbox.role_password(role),
        "prepare_threshold": None,
    }
    return psycopg.connect(**{k: v for k, v in kwargs.items() if v is not None})


# --- figure 1: capture overhead ---------------------------------------------------------------
def figure_capture(repeat: int) -> list[Figure]:
    from sqlalchemy import create_engine, event

    import recipes
    from playground import sandbox
    from playground.conf import setting
    from playground.running import runner
    from playground.sandbox import engines
    from recipes.base import Params
    from recipes.context import Run

    box = sandbox.provision()
    captured = sandbox.engine_for(box)
    bare = create_engine(
        captured.url,
        pool_size=setting("SANDBOX_POOL_SIZE"),
        max_overflow=engines.SANDBOX_MAX_OVERFLOW,
        pool_pre_ping=True,
        connect_args={"prepare_threshold": None},
    )
    event.listen(bare, "reset", engines.discard_session_state)
    cases = [
        ("eager-loading", "lazy", {"authors": 50}, "lazy N+1, 50 authors (51 queries)"),
        ("offset-pagination", "offset", {"size": 20}, "20-row page + count (2 queries)"),
    ]
    figures = []
    try:
        for slug, variant, params, label in cases:
            recipe = recipes.get(slug)
            p = Params({**recipe.defaults(), **params})
            func = recipe.variants[variant].func

            def with_capture(recipe=recipe, variant=variant, params=params) -> float:
                result = runner.run(recipe=recipe, variant=variant, params=params, engine=captured)
                assert result.ok, result.error
                return result.elapsed_ms

            def without_capture(recipe=recipe, p=p, func=func) -> float:
                setup = runner.prepare(recipe, p, bare)
                context = Run(bare, setup.prepared)
                started = time.perf_counter()
                func(context, p)
                elapsed = (time.perf_counter() - started) * 1000
                context.close()
                return elapsed

            on, off = interleave(with_capture, without_capture, repeat, warmup=3)
            ratio = statistics.median(on) / statistics.median(off)
            paired = [a / b for a, b in zip(on, off, strict=True)]
            figures.append(
                Figure(
                    name=f"capture: {slug}/{variant}",
                    playground=spread(on),
                    reference=spread(off),
                    result=f"ratio {ratio:.3f} (paired {spread(paired, 'x')})",
                    target="ratio ≤ 1.10",
                    met=ratio <= 1.10,
                    details=[f"{label}; {repeat} interleaved repetitions, same process and sandbox"],
                )
            )
    finally:
        bare.dispose()
        sandbox.drop(box)
    return figures


def interleave(a: Callable[[], float], b: Callable[[], float], repeat: int, warmup: int):
    """Run `a` and `b` alternately (order flipped every time), after warm-up runs of each."""
    for _ in range(warmup):
        a()
        b()
    first, second = [], []
    for i in range(repeat):
        if i % 2:
            second.append(b())
            first.append(a())
        else:
            first.append(a())
            second.append(b())
    return first, second


# --- figure 4: reported timings vs EXPLAIN ANALYZE --------------------------------------------
def figure_honesty(repeat: int) -> list[Figure]:
    import recipes
    from playground import sandbox
    from playground.running import runner

    box = sandbox.provision()
    engine = sandbox.engine_for(box)
    cases = [
        ("keyset-pagination", "keyset", {"page": 1}, "keyset page 1 (index seek)"),
        ("offset-pagination", "offset", {"page": 2000}, "OFFSET 39,980 (reads and drops rows)"),
        ("exists-count", "count", {}, "COUNT(*) over 100,000 users"),
    ]
    figures = []
    try:
        for slug, variant, params, label in cases:
            recipe = recipes.get(slug)
            shown, explained, timed = [], [], []
            for i in range(repeat + 2):
                result = runner.run(recipe=recipe, variant=variant, params=params, engine=engine)
                assert result.ok and result.plan, result.error
                main = next(s for s in result.statements if s.main)
                top = result.plan.json[0]
                untimed = explain_untimed(engine, main.sql, main.parameters)
                if i >= 2:  # the first runs seed and warm the cache
                    shown.append(main.duration_ms)
                    explained.append(untimed["Planning Time"] + untimed["Execution Time"])
                    timed.append(top["Planning Time"] + top["Execution Time"])
            a, b = statistics.median(shown), statistics.median(explained)
            diff = a - b
            figures.append(
                Figure(
                    name=f"honesty: {slug}/{variant}",
                    playground=spread(shown),
                    reference=spread(explained),
                    result=f"{diff:+.2f} ms ({diff / b:+.0%})",
                    target="within 20 % or 1 ms",
                    met=abs(diff) <= max(1.0, 0.2 * b),
                    details=[
                        f"{label}; shown = duration_ms of the main statement, reference = Planning + "
                        "Execution Time of EXPLAIN (ANALYZE, TIMING OFF) of that statement after each run",
                        f"the run's own EXPLAIN (ANALYZE, BUFFERS), per-node timing on: {spread(timed)}",
                    ],
                )
            )
    finally:
        sandbox.drop(box)
    return figures


def explain_untimed(engine, statement: str, parameters: Any) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, TIMING OFF): Postgres' own time for the statement without the cost of
    reading the clock around every row of every plan node. Rolled back; nothing captured."""
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        try:
            with dbapi.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + statement, parameters)
                plan = cursor.fetchone()[0]
        finally:
            dbapi.rollback()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]


# --- gunicorn ---------------------------------------------------------------------------------
class Gunicorn:
    """gunicorn.conf.py in a subprocess, one worker, DEBUG off, on a free loopback port."""

    def __init__(self, workers: int = 1, threads: int = 2):
        from bench.load import free_port

        self.port = free_port()
        self.static = Path(tempfile.mkdtemp(prefix="playground-bench-static-"))
        env = {
            **os.environ,
            "DEBUG": "0",
            "PLAYGROUND_HTTPS": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
            "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{self.port}",
            "STATIC_ROOT": str(self.static),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_THREADS": str(threads),
            "GUNICORN_LOG_LEVEL": "warning",
            "GUNICORN_KEEPALIVE": "120",  # sessions take turns: keep their connections open
        }
        python = sys.executable
        subprocess.run(
            [python, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
        )
        self.proc = subprocess.Popen(
            [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--access-logfile", "/dev/null"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        self.wait_ready()

    def wait_ready(self) -> None:
        from bench.load import Browser

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.proc.returncode}")
            try:
                if Browser(self.port).request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit("gunicorn did not answer /healthz in 90 s")

    def browser(self):
        """A new person: their own cookie jar and keep-alive connection, CSRF cookie fetched."""
        from bench.load import Browser

        browser = Browser(self.port)
        status, _ = browser.request("GET", "/api/recipes")
        assert status == 200 and "csrftoken" in browser.cookies
        return browser

    def workers(self):
        import psutil

        return [p for p in psutil.Process(self.proc.pid).children() if "gunicorn" in " ".join(p.cmdline())]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        shutil.rmtree(self.static, ignore_errors=True)


def post_run(browser, slug: str, variant: str, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    body = json.dumps({"variant": variant, "params": params}).encode()
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": browser.cookies["csrftoken"],
        "Origin": f"http://127.0.0.1:{browser.port}",
    }
    for attempt in (1, 2):
        started = time.perf_counter()
        try:
            status, data = browser.request("POST", f"/api/recipes/{slug}/run", body, headers)
            break
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # An idle keep-alive connection the server closed: nothing was run, send it again.
            browser.conn = None
            if attempt == 2:
                raise
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        raise RuntimeError(f"{slug}/{variant}: HTTP {status} {data[:300]!r}")
    return elapsed, json.loads(data)


def session_role(browser) -> str:
    from django.contrib.sessions.backends.db import SessionStore

    from playground.running.service import SESSION_KEY

    return SessionStore(session_key=browser.cookies["sessionid"])[SESSION_KEY]


def replay(conn, statements: list[dict[str, Any]]) -> float:
    """Send what a run sent, straight through psycopg: the variant's statements in one
    transaction, then each EXPLAIN in a transaction rolled back. Returns wall ms."""
    started = time.perf_counter()
    with conn.cursor() as cursor:
        for s in statements:
            if s["kind"] == "query":
                cursor.execute(s["sql"], s["parameters"])
                if cursor.description:
                    cursor.fetchall()
        conn.commit()
        for s in statements:
            if s["kind"] == "explain":
                cursor.execute(s["sql"], s["parameters"])
                cursor.fetchall()
                conn.rollback()
    return (time.perf_counter() - started) * 1000


# --- figure 2: the whole HTTP path ------------------------------------------------------------
def figure_http(site: Gunicorn, repeat: int) -> list[Figure]:
    cases = [
        ("keyset-pagination", "keyset", {}),
        ("offset-pagination", "offset", {}),
        ("exists-count", "exists", {}),
    ]
    browser = site.browser()
    figures = []
    post_run(browser, *cases[0])  # provisions the session's sandbox and seeds it
    conn = role_connection(session_role(browser))
    try:
        for slug, variant, params in cases:
            for _ in range(5):
                _, result = post_run(browser, slug, variant, params)
                replay(conn, result["statements"])
            http, bare, overhead = [], [], []
            for _ in range(repeat):
                elapsed, result = post_run(browser, slug, variant, params)
                assert result["ok"], result["error"]
                direct = replay(conn, result["statements"])
                http.append(elapsed)
                bare.append(direct)
                overhead.append(elapsed - direct)
            sent = sum(1 for s in result["statements"] if s["kind"] in ("query", "explain"))
            p50 = statistics.median(overhead)
            figures.append(
                Figure(
                    name=f"http: {slug}/{variant}",
                    playground=spread(http),
                    reference=spread(bare),
                    result=f"overhead {spread(overhead)}",
                    target="overhead ≤ 15 ms p50",
                    met=p50 <= 15,
                    details=[f"{sent} statements replayed (queries + EXPLAIN JSON + EXPLAIN text)"],
                )
            )
    finally:
        conn.close()
    return figures


# --- figure 3: sandbox cold start -------------------------------------------------------------
HAND_SEED = """
CREATE TABLE hand_documents (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    owner_id integer NOT NULL,
    title text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
INSERT INTO hand_documents (id, owner_id, title, created_at, updated_at, deleted_at)
OVERRIDING SYSTEM VALUE
SELECT i, 1 + (i::bigint * 7919) %% 1000, 'Document ' || i, ts, ts,
       CASE WHEN i %% 10 = 0 THEN ts + interval '1 day' END
FROM generate_series(1, %(rows)s) AS i,
     LATERAL (SELECT timestamptz '2024-01-01 00:00:00+00' + ((i - 1) / 2) * interval '37 seconds' AS ts) t;
CREATE INDEX ON hand_documents (created_at DESC, id DESC);
ANALYZE hand_documents;
"""


def figure_cold(site: Gunicorn, repeat: int) -> list[Figure]:
    from playground import sandbox
    from playground.models import Sandbox

    slug, variant = "offset-pagination", "offset"
    cold, hand, setup_logs = [], [], []
    rows = 200_000
    for i in range(repeat + 1):
        browser = site.browser()
        elapsed, result = post_run(browser, slug, variant, {})
        assert result["ok"], result["error"]
        role = session_role(browser)
        with role_connection(role) as conn:
            started = time.perf_counter()
            for statement in HAND_SEED.split(";\n"):
                if statement.strip():
                    conn.execute(statement, {"rows": rows} if "%(rows)s" in statement else None)
            conn.commit()
            by_hand = (time.perf_counter() - started) * 1000
        if i:  # the first new session warms the worker's code paths
            cold.append(elapsed)
            hand.append(by_hand)
            setup_logs.append(result["setup"])
        sandbox.drop(Sandbox.objects.get(role=role))
    ratio = statistics.median(cold) / statistics.median(hand)
    p50 = statistics.median(cold)
    return [
        Figure(
            name="cold start: offset-pagination, 200,000 documents",
            playground=spread(cold),
            reference=spread(hand),
            result=f"ratio {ratio:.2f}",
            target="≤ 1.3× and ≤ 500 ms",
            met=ratio <= 1.3 and p50 <= 500,
            details=[
                "playground = a new session's first POST: role, schema, seed, index, ANALYZE, the run "
                "and its EXPLAINs, the HTTP round trip",
                "reference = CREATE TABLE + INSERT … SELECT generate_series + CREATE INDEX + ANALYZE "
                "in one transaction, same role, same rows",
                f"last setup log: {'; '.join(setup_logs[-1])}",
            ],
        )
    ]


# --- figure 5: worker memory ------------------------------------------------------------------
def small_params(recipe) -> dict[str, Any]:
    params = {}
    for p in recipe.params:
        wanted = SMALL.get(p.name)
        if wanted == "min":
            params[p.name] = int(p.min)
        elif wanted is not None:
            params[p.name] = wanted
    return params


def figure_memory(site: Gunicorn, runs: int) -> list[Figure]:
    import recipes
    from playground import sandbox
    from playground.conf import setting

    plan = [
        (recipe.slug, variant, small_params(recipe))
        for recipe in recipes.REGISTRY.values()
        for variant in recipe.variants
    ]
    browsers = [site.browser() for _ in range(setting("SANDBOX_ENGINE_CACHE") + 2)]
    (worker,) = site.workers()
    post_run(browsers[0], *plan[0])
    first = worker.memory_info().rss
    trend = []
    started = time.monotonic()
    for i in range(runs):
        slug, variant, params = plan[i % len(plan)]
        post_run(browsers[(i // len(plan)) % len(browsers)], slug, variant, params)
        if (i + 1) % max(1, runs // 4) == 0:
            trend.append(f"{i + 1}: {(worker.memory_info().rss - first) / 2**20:+.1f} MB")
    last = worker.memory_info().rss
    wall = time.monotonic() - started
    growth = (last - first) / 2**20
    with sandbox.admin_engine().connect() as conn:
        from sqlalchemy import text

        held = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE starts_with(usename, :p)"), {"p": ROLE_PREFIX}
        ).scalar()
    bound = setting("SANDBOX_ENGINE_CACHE") * setting("SANDBOX_POOL_SIZE")
    return [
        Figure(
            name=f"memory: worker RSS after {runs:,} runs",
            playground=f"{last / 2**20:.1f} MB",
            reference=f"{first / 2**20:.1f} MB",
            result=f"growth {growth:+.1f} MB",
            target="growth ≤ 20 MB",
            met=growth <= 20,
            details=[
                f"{len(plan)} recipe/variant pairs in turn, small sizes, {len(browsers)} sessions "
                f"(engine cache {setting('SANDBOX_ENGINE_CACHE')}); {runs / wall:.0f} runs/s",
                "growth along the way: " + ", ".join(trend),
                f"sandbox connections still open afterwards: {held} (pooled, at most {bound})",
            ],
        )
    ]


# --- main -------------------------------------------------------------------------------------
FIGURES = ("capture", "http", "cold", "honesty", "memory")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=30, help="repetitions per figure (default 30)")
    parser.add_argument("--memory-runs", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="10 repetitions, 200 memory runs")
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma separated, of {', '.join(FIGURES)}")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.memory_runs = 10, 200
    chosen = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}")

    configure_environment()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    drop_bench_sandboxes()

    began = time.monotonic()
    figures: list[Figure] = []
    try:
        if "capture" in chosen:
            figures += figure_capture(args.repeat)
        if "honesty" in chosen:
            figures += figure_honesty(max(10, args.repeat // 2))
        if {"http", "cold", "memory"} & set(chosen):
            site = Gunicorn()
            try:
                if "memory" in chosen:  # first, so the worker's growth starts from its first run
                    figures += figure_memory(site, args.memory_runs)
                if "http" in chosen:
                    figures += figure_http(site, args.repeat)
                if "cold" in chosen:
                    figures += figure_cold(site, max(5, args.repeat // 6))
            finally:
                site.stop()
    finally:
        drop_bench_sandboxes()

    import platform

    import psutil

    print(
        f"\nThis machine: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GB, "
        f"Python {platform.python_version()}, {server_version()}; {time.monotonic() - began:.0f} s"
    )
    print_table(figures)


def server_version() -> str:
    from sqlalchemy import text

    from playground import sandbox

    with sandbox.admin_engine().connect() as conn:
        return "PostgreSQL " + conn.execute(text("SHOW server_version")).scalar()


if __name__ == "__main__":
    main(sys.argv[1:])
