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

Every thread may run a recipe, and a run may hold up to PLAYGROUND_CONNECTION_LIMIT sandbox
connections: the defaults (2 x 2) keep `playground.sandbox.connection_budget(workers, threads)`
below a stock Postgres' 100 connections. docs/deploy.md explains the sizing.

One run sends several statements, each limited by the sandbox statement timeout
(PLAYGROUND_STATEMENT_TIMEOUT_MS, 10 s): seeding, the variant, its EXPLAIN ANALYZE. Keep
GUNICORN_TIMEOUT, and the reverse proxy's read timeout, well above it: a sync worker
(threads = 1) silent for longer than GUNICORN_TIMEOUT is killed mid-run.

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
