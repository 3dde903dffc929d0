"""Gunicorn settings for the playground; every number can be overridden from the environment.

| variable | default | meaning |
|---|---|---|
| HOST, PORT | 0.0.0.0, 8000 | address to listen on |
| WEB_CONCURRENCY | 2 | worker processes |
| GUNICORN_THREADS | 2 | threads per worker (gthread when above 1); each runs one request at a time |
| GUNICORN_TIMEOUT | 60 | seconds a worker may stay silent before it is killed and replaced |
| GUNICORN_GRACEFUL_TIMEOUT | 30 | seconds running requests get to finish on shutdown |
| GUNICORN_KEEPALIVE | 5 | seconds an idle connection is kept; above a load balancer's idle timeout |
| GUNICORN_PRELOAD | 1 | import the app once in the master, then fork the workers |
| GUNICORN_MAX_REQUESTS | 1000 | requests after which a worker is replaced (0: never) |
| GUNICORN_MAX_REQUESTS_JITTER | 100 | up to this many more, at random, so workers are not replaced together |
| GUNICORN_MAX_WORKER_MB | 200 | a worker whose memory is above this after a request is replaced (0: never) |

Every thread may run a recipe, and a run may hold up to PLAYGROUND_CONNECTION_LIMIT sandbox
connections: the defaults (2 x 2) keep `playground.sandbox.connection_budget(workers, threads)`
below a stock Postgres' 100 connections. docs/deploy.md explains the sizing.

One run sends several statements, each limited by the sandbox statement timeout
(PLAYGROUND_STATEMENT_TIMEOUT_MS, 10 s): seeding, the variant, its EXPLAIN ANALYZE. Keep
GUNICORN_TIMEOUT, and the reverse proxy's read timeout, well above it: a sync worker
(threads = 1) silent for longer than GUNICORN_TIMEOUT is killed mid-run.

Workers are replaced now and then so that memory comes back: CPython rarely returns freed memory
to the system, so a worker that once held a heavy run's objects stays big until it exits. After
GUNICORN_MAX_REQUESTS (plus jitter) requests, or after any request that leaves it above
GUNICORN_MAX_WORKER_MB, a worker finishes the requests it has and a fresh one is forked.

Preloading matters for the embedded Postgres: importing the settings starts it, so with preload
the master starts it once and keeps it until the master exits, however often workers are
replaced. Nothing in the import opens a database connection, and `pre_fork` closes any that did,
so no socket is ever shared between processes.
"""

from __future__ import annotations

import os
import sys


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


wsgi_app = "playground.wsgi:application"
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_env_int('PORT', 8000)}"
workers = _env_int("WEB_CONCURRENCY", 2)
threads = _env_int("GUNICORN_THREADS", 2)
worker_class = "gthread" if threads > 1 else "sync"
timeout = _env_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
preload_app = os.environ.get("GUNICORN_PRELOAD", "1").strip().lower() in {"1", "true", "yes", "on"}
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 100)
max_worker_mb = _env_int("GUNICORN_MAX_WORKER_MB", 200)

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# The worker heartbeat file: memory-backed where it exists (containers' /tmp may be on overlayfs).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
# X-Forwarded-* from these addresses set the request scheme; Django reads its own setting too.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")


def pre_fork(server, worker):
    """Close whatever the master connected to, so that no worker inherits a socket."""
    if "django.db" not in sys.modules:
        return
    from django.db import connections

    connections.close_all()


def post_request(worker, req, environ, resp):
    """Replace a worker whose memory a request left above GUNICORN_MAX_WORKER_MB.

    The worker stops taking requests, finishes those it has (graceful_timeout), and the master
    forks a fresh one, as after max_requests.
    """
    if max_worker_mb <= 0 or not worker.alive:
        return
    resident = resident_bytes()
    if resident > max_worker_mb * 2**20:
        worker.log.info(
            "Replacing worker %s: %.0f MB resident, above GUNICORN_MAX_WORKER_MB=%s",
            worker.pid,
            resident / 2**20,
            max_worker_mb,
        )
        worker.alive = False


def resident_bytes() -> int:
    """This process's resident memory, read from /proc where there is one (a few microseconds)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil

        return psutil.Process().memory_info().rss
