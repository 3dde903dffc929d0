"""Load benchmark: N simulated people running recipes against gunicorn, on loopback only.

    python -m bench.load --users 50 --seconds 180
    python -m bench.load --users 50 --seconds 180 --restart     # also restart Postgres half-way

It starts its own embedded Postgres (PLAYGROUND_PGDATA, default /tmp/pg-load) and gunicorn with
gunicorn.conf.py on a free 127.0.0.1 port, with DEBUG off. Each simulated person has a cookie jar
of their own (so a session and a sandbox of their own): GET / for the CSRF cookie, then runs the
pagination, eager-loading and exists/count recipes with their default parameters, a random
variant each time, with think time between runs. It prints latency percentiles per endpoint,
runs per second, errors by kind, the peak number of Postgres connections, worker memory, and with
--restart the time from a Postgres restart to the first successful run after it.

A run that reports ok=false is a variant failing on purpose (raiseload and friends), not an
error: it is counted separately. Errors are transport failures and HTTP statuses other than 200;
those inside the restart window are reported apart, since in-flight runs are expected to fail.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ("offset-pagination", "keyset-pagination", "eager-loading", "exists-count")


class Browser:
    """One person: a keep-alive connection and a cookie jar."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None
        self.headers: http.client.HTTPMessage | None = None
        """The headers of the last response."""

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=90)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                self.headers = response.headers
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if attempt == 2 or method != "GET":
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for key, morsel in jar.items():
                self.cookies[key] = morsel.value
        return response.status, data

    def run(self, slug: str, variant: str):
        body = json.dumps({"variant": variant, "params": {}}).encode()
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-CSRFToken": self.cookies.get("csrftoken", ""),
            "Origin": f"http://127.0.0.1:{self.port}",
        }
        return self.request("POST", f"/api/recipes/{slug}/run", body, headers)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.restart_errors: Counter[str] = Counter()
        self.variant_failures: Counter[str] = Counter()
        self.runs_ok = 0
        self.in_restart = False

    def record(self, endpoint: str, seconds: float, problem: str | None = None):
        with self.lock:
            self.latency[endpoint].append(seconds)
            if problem:
                (self.restart_errors if self.in_restart else self.errors)[f"{endpoint}: {problem}"] += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def person(port: int, stop_at: float, stats: Stats, variants: dict[str, list[str]], think: float, seed: int):
    rng = random.Random(seed)
    browser = Browser(port)
    time.sleep(rng.uniform(0, 3))  # people do not all arrive in the same second
    while time.monotonic() < stop_at:
        try:
            if "csrftoken" not in browser.cookies or rng.random() < 0.1:
                started = time.monotonic()
                status, _ = browser.request("GET", "/")
                stats.record("GET /", time.monotonic() - started, None if status == 200 else f"HTTP {status}")
            slug = rng.choice(RECIPES)
            variant = rng.choice(variants[slug])
            endpoint = "POST /api/recipes/<slug>/run"
            started = time.monotonic()
            status, data = browser.run(slug, variant)
            elapsed = time.monotonic() - started
            if status == 200:
                body = json.loads(data)
                with stats.lock:
                    stats.runs_ok += 1
                    if not body["ok"]:
                        stats.variant_failures[f"{slug}/{variant}"] += 1
                stats.record(endpoint, elapsed)
                stats.record(f"run {slug}", elapsed)
            else:
                try:
                    detail = json.loads(data).get("error", "")[:90]
                except ValueError:
                    detail = data[:90].decode(errors="replace")
                stats.record(endpoint, elapsed, f"HTTP {status} {detail}")
        except Exception as exc:  # transport errors are results too
            stats.record("transport", 0.0, f"{type(exc).__name__}: {exc}"[:120])
            browser.conn = None
            time.sleep(0.5)
        time.sleep(rng.uniform(0.5 * think, 1.5 * think))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--think", type=float, default=1.0, help="mean think time between runs (s)")
    parser.add_argument("--pgdata", default="/tmp/pg-load")
    parser.add_argument("--restart", action="store_true", help="restart Postgres half-way through")
    args = parser.parse_args(argv)
    args.users = max(1, min(args.users, 200))
    args.seconds = max(10, min(args.seconds, 1800))

    pgdata = Path(args.pgdata)
    port = free_port()
    env = {
        **os.environ,
        "PLAYGROUND_PGDATA": str(pgdata),
        "DEBUG": "0",
        "SECRET_KEY": "load-benchmark-only-" + "x" * 40,
        "PLAYGROUND_HTTPS": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}",
        "STATIC_ROOT": str(pgdata.parent / (pgdata.name + "-static")),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "GUNICORN_LOG_LEVEL": "warning",
    }
    for name in ("DATABASE_URL", "SANDBOX_DATABASE_URL"):
        env.pop(name, None)

    # Keep the embedded server up for the whole benchmark, whoever else attaches to it.
    os.environ.update({"PLAYGROUND_PGDATA": str(pgdata)})
    sys.path.insert(0, str(ROOT))
    from playground import embedded

    server = embedded.start(pgdata, database="playground")
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([python, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "reap_sandboxes", "--idle-seconds", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )

    gunicorn = subprocess.Popen(
        [str(Path(python).parent / "gunicorn"), "-c", "gunicorn.conf.py", "--access-logfile", "/dev/null"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    import psutil
    import psycopg

    stats = Stats()
    samples = {"connections": [], "rss": []}
    recovery: dict[str, float] = {}
    try:
        ready = time.monotonic() + 60
        while True:
            try:
                status, _ = Browser(port).request("GET", "/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > ready or gunicorn.poll() is not None:
                raise SystemExit("gunicorn did not become healthy")
            time.sleep(0.3)
        status, data = Browser(port).request("GET", "/api/recipes")
        variants = {r["slug"]: [v["slug"] for v in r["variants"]] for r in json.loads(data)["recipes"]}

        stop_at = time.monotonic() + args.seconds
        users = [
            threading.Thread(target=person, args=(port, stop_at, stats, variants, args.think, i), daemon=True)
            for i in range(args.users)
        ]
        for u in users:
            u.start()
        started = time.monotonic()

        def sample():
            master = psutil.Process(gunicorn.pid)
            with psycopg.connect(
                host=server.socket_dir, user="postgres", dbname="postgres", autocommit=True
            ) as c:
                while time.monotonic() < stop_at:
                    try:
                        n = c.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                        ).fetchone()[0]
                        samples["connections"].append(n - 1)  # not this one
                        samples["rss"].append([w.memory_info().rss for w in master.children()])
                    except (psycopg.Error, psutil.Error):
                        return
                    time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        if args.restart:
            time.sleep(args.seconds / 2)
            sampler.join(0)
            from tests.restart_check import restart_embedded

            with stats.lock:
                stats.in_restart = True
            t0 = time.monotonic()
            restart_embedded(pgdata)
            recovery["restart_command_s"] = time.monotonic() - t0
            probe = Browser(port)
            probe.request("GET", "/")
            while True:
                try:
                    status, data = probe.run("offset-pagination", "offset")
                    if status == 200 and json.loads(data)["ok"]:
                        break
                except OSError:
                    probe.conn = None
                time.sleep(0.05)
            recovery["first_good_run_s"] = time.monotonic() - t0
            time.sleep(2)  # runs in flight at the restart finish or fail inside the window
            with stats.lock:
                stats.in_restart = False
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()

        for u in users:
            u.join(args.seconds + 120)
        wall = time.monotonic() - started
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(30)

    print(f"\n{args.users} users, {args.seconds} s, think {args.think} s, gunicorn.conf.py, DEBUG off")
    print(f"{'endpoint':<40} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for endpoint, values in sorted(stats.latency.items()):
        if endpoint == "transport":
            continue
        print(
            f"{endpoint:<40} {len(values):>7} {pct(values, 50):>8.0f} {pct(values, 95):>8.0f} "
            f"{pct(values, 99):>8.0f} {max(values) * 1000:>8.0f}"
        )
    print(f"runs/s (200 answers): {stats.runs_ok / wall:.1f}   ({stats.runs_ok} runs in {wall:.0f} s)")
    print(f"unexpected errors: {sum(stats.errors.values())}")
    for kind, n in stats.errors.most_common():
        print(f"  {n:>5}  {kind}")
    if stats.variant_failures:
        print(
            "variants reporting ok=false (on purpose): "
            + ", ".join(f"{k} {v}" for k, v in stats.variant_failures.most_common())
        )
    conns = samples["connections"]
    if conns:
        print(f"Postgres client connections: peak {max(conns)}, median {statistics.median(conns):.0f}")
    if samples["rss"]:
        peak_worker = max(max(s) for s in samples["rss"] if s) / 2**20
        peak_total = max(sum(s) for s in samples["rss"]) / 2**20
        print(f"worker RSS: peak per worker {peak_worker:.0f} MB, peak all workers {peak_total:.0f} MB")
    if recovery:
        print(
            f"Postgres restart: pg_ctl restart took {recovery['restart_command_s']:.2f} s; first good run "
            f"{recovery['first_good_run_s']:.2f} s after the restart began"
        )
        print(f"errors inside the restart window (expected): {sum(stats.restart_errors.values())}")
        for kind, n in stats.restart_errors.most_common(8):
            print(f"  {n:>5}  {kind}")
    sys.exit(1 if stats.errors else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
