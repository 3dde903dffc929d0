"""A workshop room on gunicorn.conf.py's defaults (2 workers x 2 threads): N people join a room
and press Run in the same second, their first run and then their second, all at once each time;
once in a room whose sandboxes nobody prepared (every first run seeds its own dataset), once in a
room whose host prepared a sandbox per person beforehand. Target: with prepared sandboxes, the
first runs' p95 within 1.3x the same people's second runs' p95."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.crowd import describe
from bench.report import Figure, quantile
from bench.server import Gunicorn, post

RECIPE = "keyset-pagination"
"""What the room runs: its default parameters, whose first run seeds 200,000 documents."""
TARGET = 1.3
PREPARE_SECONDS = 900
"""How long preparing may take before the benchmark gives up on it."""


@dataclass
class Wave:
    """One press of Run by everyone at once: each person's client wall ms."""

    times: list[float]
    errors: list[str]

    def summary(self) -> str:
        return (
            f"p50 {quantile(self.times, 0.5) / 1000:.2f} s, p95 {quantile(self.times, 0.95) / 1000:.2f} s, "
            f"max {max(self.times, default=0) / 1000:.2f} s"
        )


def measure(site: Gunicorn, users: int) -> list[Figure]:
    """The room twice, unprepared then prepared: first and second runs of `users` people."""
    bare_first, bare_second, _ = room(site, users, prepared=False)
    first, second, preparing = room(site, users, prepared=True)
    p95, base = quantile(first.times, 0.95), quantile(second.times, 0.95)
    errors = [*bare_first.errors, *bare_second.errors, *first.errors, *second.errors]
    return [
        Figure(
            name=f"room: {users} people's first runs at once, no sandbox prepared",
            playground=bare_first.summary(),
            reference=f"second runs: {bare_second.summary()}",
            result=f"p95 ratio {quantile(bare_first.times, 0.95) / quantile(bare_second.times, 0.95):.2f}",
            target="(for comparison)",
            met=True,
        ),
        Figure(
            name=f"room: {users} people's first runs at once, sandboxes prepared",
            playground=first.summary(),
            reference=f"second runs: {second.summary()}",
            result=f"p95 ratio {p95 / base:.2f}",
            target=f"≤ {TARGET}x second runs' p95",
            met=p95 <= TARGET * base and not errors,
            details=[
                f"preparing {users} sandboxes took {preparing:.0f} s, before anyone joined",
                *(f"error: {e}" for e in errors[:5]),
            ],
        ),
    ]


def room(site: Gunicorn, users: int, *, prepared: bool) -> tuple[Wave, Wave, float]:
    """Make a room (and prepare it), let `users` people join, two waves of Run; close it."""
    import recipes

    host = site.browser()
    made = call(host, "POST", "/rooms/new", {"name": "bench room", "recipes": [RECIPE]}, expect=201)
    host_path = "/" + made["host_url"].split("/", 3)[3]
    preparing = 0.0
    try:
        if prepared:
            preparing = prepare(host, host_path, users)
        people = [site.browser() for _ in range(users)]
        for n, person in enumerate(people):
            call(person, "POST", "/rooms/join", {"code": made["code"], "name": f"person {n}"}, expect=201)
        variant = recipes.get(RECIPE).default_variant
        first = wave(people, variant)
        second = wave(people, variant)
    finally:
        call(host, "POST", host_path + "close", {}, expect=200)
    return first, second, preparing


def prepare(host, host_path: str, users: int) -> float:
    """Ask for a prepared sandbox per person and wait until every one is seeded: seconds taken."""
    started = time.monotonic()
    call(host, "POST", host_path + "prepare", {"count": users}, expect=200)
    while time.monotonic() - started < PREPARE_SECONDS:
        progress = call(host, "GET", host_path, None, expect=200)["prepared"]
        if progress["state"] == "done":
            return time.monotonic() - started
        if progress["state"] == "stopped":
            raise SystemExit(f"preparing stopped: {progress}")
        time.sleep(1)
    raise SystemExit(f"preparing {users} sandboxes took longer than {PREPARE_SECONDS} s")


def wave(people: list, variant: str) -> Wave:
    """Everyone presses Run in the same moment (a barrier): each one's wall ms."""
    start = threading.Barrier(len(people))
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def press(person) -> None:
        start.wait()
        elapsed, status, body = post(person, RECIPE, variant, {})
        with lock:
            if status == 200 and json.loads(body)["ok"]:
                times.append(elapsed)
            else:
                errors.append(describe(status, body))

    threads = [threading.Thread(target=press, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return Wave(times, errors)


def call(person, method: str, path: str, data: dict[str, Any] | None, *, expect: int) -> dict[str, Any]:
    """A JSON request as `person`, on a new connection; its JSON answer, or SystemExit saying what
    came back instead."""
    headers = {"Accept": "application/json", "Origin": f"http://127.0.0.1:{person.port}"}
    body = None
    if data is not None:
        body = json.dumps(data).encode()
        headers |= {"Content-Type": "application/json", "X-CSRFToken": person.cookies["csrftoken"]}
    if person.conn is not None:  # idle past the keep-alive: the server may have closed it
        person.conn.close()
        person.conn = None
    status, answer = person.request(method, path, body, headers)
    if status != expect:
        raise SystemExit(f"{method} {path}: HTTP {status} {answer[:300]!r}")
    return json.loads(answer)
