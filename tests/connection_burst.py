"""A burst of page loads from one session that has a sandbox, and the connections left after it.

Used by tests/test_connections.py, and runnable against any site served on the embedded server:

    make run                                                      # in one shell
    .venv/bin/python -m tests.connection_burst 8000 .pgdata       # in another

It runs one recipe (the session gets its sandbox), loads a recipe page 150 times, 10 at a time,
waits 5 s and prints one JSON line: the server's client connections by role and state before
the burst and after it. The counts are read as the embedded server's superuser, whose own
connection is left out.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import psycopg

PAGE = "/recipes/keyset-pagination/"
RUN = "/api/recipes/keyset-pagination/run"


class Browser:
    """One session: keeps its cookies; sends each request on a new TCP connection, as curl does."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", https: bool = False):
        self.port, self.host, self.https = port, host, https
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None, **headers: str):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers.setdefault("Host", self.host)
        if self.https:
            headers["X-Forwarded-Proto"] = "https"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            content = response.read()
        finally:
            conn.close()
        for raw in response.headers.get_all("Set-Cookie") or []:
            self.cookies.update({name: morsel.value for name, morsel in SimpleCookie(raw).items()})
        return response, content

    def run(self, params: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """Run keyset pagination through the JSON API (the session's sandbox is made on the way)."""
        if "csrftoken" not in self.cookies:
            self.request("GET", "/api/recipes")
        origin = f"{'https' if self.https else 'http'}://{self.host}"
        body = json.dumps({"variant": "keyset", "params": {"rows": 1000, **(params or {})}})
        response, content = self.request(
            "POST",
            RUN,
            body,
            **{
                "Content-Type": "application/json",
                "X-CSRFToken": self.cookies["csrftoken"],
                "Referer": origin + "/",
            },
        )
        return response.status, json.loads(content)


def burst(browser: Browser, *, total: int = 150, at_once: int = 10) -> dict[int, int]:
    """Load the recipe page `total` times, `at_once` at a time: how many got each status."""
    with ThreadPoolExecutor(at_once) as pool:
        return dict(Counter(pool.map(lambda _: browser.request("GET", PAGE)[0].status, range(total))))


def socket_dir(pgdata: Path) -> str:
    """Where the embedded server of `pgdata` listens (line 5 of postmaster.pid)."""
    return (pgdata / "postmaster.pid").read_text().splitlines()[4]


def connections(pgdata: Path) -> dict[str, int]:
    """Client connections on the server, as "role database state": count."""
    with psycopg.connect(host=socket_dir(pgdata), user="postgres", dbname="postgres") as conn:
        rows = conn.execute(
            "SELECT usename, datname, state, count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1, 2, 3"
        ).fetchall()
    return {f"{role} {db} {state}": n for role, db, state, n in sorted(rows)}


def of_role(counts: dict[str, int], role: str) -> int:
    return sum(n for key, n in counts.items() if key.split()[0] == role)


def measure(browser: Browser, pgdata: Path, *, settle: float = 5) -> dict[str, Any]:
    """Give the session a sandbox, burst, wait `settle` seconds; the figures as one dict."""
    status, result = browser.run()
    assert status == 200 and result["ok"], result
    before = connections(pgdata)
    started = time.monotonic()
    statuses = burst(browser)
    seconds = time.monotonic() - started
    time.sleep(settle)
    return {
        "statuses": statuses,
        "burst_s": round(seconds, 1),
        "before": before,
        "after": connections(pgdata),
    }


def main() -> None:
    port, pgdata = int(sys.argv[1]), Path(sys.argv[2]).resolve()
    print(json.dumps(measure(Browser(port), pgdata)))


if __name__ == "__main__":
    main()
