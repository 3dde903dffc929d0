"""The site under measurement: gunicorn in a subprocess, and a person posting runs to it."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.environment import ROOT


class Gunicorn:
    """gunicorn.conf.py in a subprocess, one worker, DEBUG off, on a free loopback port."""

    def __init__(self, workers: int = 1, threads: int = 2, **settings: str):
        """`settings`: environment variables over the defaults below (GUNICORN_KEEPALIVE="5")."""
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
            **settings,
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


def post(person, slug: str, variant: str, params: dict[str, Any]) -> tuple[float, int, bytes]:
    """One run as `person`: client wall ms, HTTP status, body. Transport errors are a status 0."""
    body = json.dumps({"variant": variant, "params": params}).encode()
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": person.cookies["csrftoken"],
        "Origin": f"http://127.0.0.1:{person.port}",
    }
    for _attempt in (1, 2):
        started = time.perf_counter()
        try:
            status, data = person.request("POST", f"/api/recipes/{slug}/run", body, headers)
            break
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            # A kept-alive connection the server closed (an idle timeout, a worker replaced):
            # nothing was run, and a browser sends it again on a new one. So does this person.
            person.conn = None
            status, data = 0, f"{type(exc).__name__}: {exc}".encode()
        except OSError as exc:
            person.conn = None
            status, data = 0, f"{type(exc).__name__}: {exc}".encode()
            break
    return (time.perf_counter() - started) * 1000, status, data


def post_run(browser, slug: str, variant: str, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """POST /api/recipes/<slug>/run as `browser`: client wall ms and the RunResult JSON; anything
    but a 200 stops the figure."""
    elapsed, status, data = post(browser, slug, variant, params)
    if status != 200:
        raise RuntimeError(f"{slug}/{variant}: HTTP {status} {data[:300]!r}")
    return elapsed, json.loads(data)


def session_role(browser) -> str:
    """The sandbox role of `browser`'s session, read from the session store."""
    from django.contrib.sessions.backends.db import SessionStore

    from playground.running.service import SESSION_KEY

    return SessionStore(session_key=browser.cookies["sessionid"])[SESSION_KEY]
