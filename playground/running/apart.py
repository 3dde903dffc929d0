"""A heavy run in a process of its own: the same runner, away from the web worker's threads.

A heavy run spends seconds of Python (building tens of thousands of ORM objects). In the web
worker it would hold the interpreter lock against the worker's other thread, whose light runs
then wait for it at every database round trip, and the memory it took would stay with the
worker. In a process of its own it takes only the CPU time nobody else wants (`lower_own_priority`),
and its memory goes back to the system when it exits. Starting one costs about half a second (Python and
the recipes, no Django), small beside a heavy run.

The web process hands it a job on stdin (the recipe, the variant, the parameters, the sandbox
role's URL and the limits) and reads the RunResult back as JSON on stdout. The run's watch lives
in the child (deadline, statement count); the parent watches the client and, when it leaves,
sends SIGTERM. Here the deadline and the client interrupt Python work as well (`interruptible`),
which no thread of a web worker can do. A child that outlives its deadline by GRACE_SECONDS is
killed.

    python -m playground.running.apart < job.json        # what the web process starts
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.running.deadline import CLIENT_GONE, POLL_SECONDS, RunStopped, Watch, deadline_message

PROJECT = Path(__file__).resolve().parents[2]
GRACE_SECONDS = 10.0
"""How long past its deadline a heavy run's process may take to answer before it is killed."""
NICENESS = 10
"""The child's scheduling priority below the web workers': light runs and Postgres come first."""
APPLICATION_NAME = "playground heavy run"
"""What pg_stat_activity shows for a heavy run's connections."""


class ApartError(Exception):
    """A heavy run's process ended without a result (killed, crashed); the message says how."""


@dataclass(frozen=True)
class Job:
    """What a heavy run's process needs, all of it JSON."""

    recipe: str
    variant: str
    params: dict[str, Any]
    url: str
    """The sandbox role's URL, password included (sent on stdin, never on the command line)."""
    pool_size: int
    max_overflow: int
    max_rows: int
    deadline: float
    max_statements: int
    shown: tuple[int, int]
    """(statements, bytes) a result may list, as the web process would trim it."""


def run_apart(job: Job, *, client_gone: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run `job` in a child process; the RunResult as JSON (`RunResult.to_json()`).

    Raises `ApartError` when the child ends without one, and the child's `SetupError` as
    `SetupError` (the same refusal as in the web process).
    """
    from playground.running.runner import SetupError

    child = subprocess.Popen(
        [sys.executable, "-m", "playground.running.apart"],
        cwd=PROJECT,  # where `playground` and `recipes` import from, wherever the server started
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    given = json.dumps(job.__dict__).encode()
    out, err = _wait(child, given, job.deadline + GRACE_SECONDS, client_gone)
    try:
        answer = json.loads(out)
    except ValueError:
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {child.returncode}"]
        raise ApartError(f"The run's own process ended without a result: {detail[0]}") from None
    if "setup_error" in answer:
        raise SetupError(answer["setup_error"])
    return answer["result"]


def _wait(
    child: subprocess.Popen, given: bytes, limit: float, client_gone: Callable[[], bool] | None
) -> tuple[bytes, bytes]:
    """The child's stdout and stderr, looking at the client every POLL_SECONDS meanwhile."""
    kill_at, told = time.monotonic() + limit, False
    stdin: bytes | None = given
    while True:
        try:
            return child.communicate(stdin, timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            stdin = None  # handed over already: communicate() goes on from where it was
        if time.monotonic() > kill_at:
            child.kill()
        elif not told and client_gone is not None and client_gone():
            child.send_signal(signal.SIGTERM)
            told = True


# --- the child ------------------------------------------------------------------------------
def main() -> None:
    from sqlalchemy import event

    import recipes
    from playground.running.engine import sandbox_engine
    from playground.running.runner import SetupError, run

    job = Job(**json.load(sys.stdin))
    lower_own_priority()
    engine = sandbox_engine(
        job.url,
        pool_size=job.pool_size,
        max_overflow=job.max_overflow,
        connect_args={"application_name": APPLICATION_NAME},
    )
    event.listen(engine, "connect", lambda dbapi_connection, record: lower_backend_priority(dbapi_connection))
    watch = Watch(job.deadline, max_statements=job.max_statements)
    try:
        with interruptible(watch):
            result = run(
                recipe=recipes.get(job.recipe),
                variant=job.variant,
                params=job.params,
                engine=engine,
                max_rows=job.max_rows,
                watch=watch,
            )
        answer: Mapping[str, Any] = {"result": result.trimmed(*job.shown).to_json()}
    except SetupError as exc:
        answer = {"setup_error": str(exc)}
    finally:
        with contextlib.suppress(Exception):  # an interrupted pool may not close cleanly: we exit
            engine.dispose()
    sys.stdout.write(json.dumps(answer, default=str))
    sys.stdout.flush()


def lower_own_priority() -> None:
    """Run this process below everything else: niceness NICENESS, and on Linux the SCHED_IDLE
    policy, under which it gets the CPU time no other process wants.

    Niceness alone still gave a heavy run a share of a busy core (about a tenth against a web
    worker), enough for a crowd's light runs to wait for it now and then. Under SCHED_IDLE the
    kernel hands a core to any waking ordinary process at once. A heavy run on a saturated machine
    then slows down, and its deadline stops it as any slow run; nothing here holds a lock that
    other processes wait for (its Postgres backend keeps ordinary scheduling, see
    `lower_backend_priority`).
    """
    os.nice(NICENESS)
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: niceness only
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def lower_backend_priority(dbapi_connection) -> bool:
    """Give the Postgres backend serving this connection the run's own low priority, when that
    backend is a process of this machine that this one may renice. Whether it did.

    A heavy run's time is spent half in this process and half in its backend; lowering only this
    process left the backend competing at full priority with the light runs' backends, and a
    crowd's light runs waited for it. The backend is found by its pid and recognised by its
    process title, which names the role and this connection's own client port ("postgres: sbx_…
    127.0.0.1(40506) idle"), so a pid of another machine or container is never touched. A server
    elsewhere, another user's processes, or titles turned off (`update_process_title`) leave the
    backend as it is: the run is the same, only less polite.
    """
    info = dbapi_connection.info
    if not _served_here(info.host, info.hostaddr):
        return False
    pid = info.backend_pid
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        with socket.socket(fileno=os.dup(dbapi_connection.pgconn.socket)) as sock:
            local = sock.getsockname()
    except OSError:
        return False
    client = f"({local[1]})" if isinstance(local, tuple) else "[local]"
    if not title.startswith("postgres:") or info.user not in title or client not in title:
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, pid, max(NICENESS, os.getpriority(os.PRIO_PROCESS, pid)))
    except OSError:  # not ours to renice
        return False
    return True


def _served_here(host: str, hostaddr: str) -> bool:
    """Whether libpq reached the server through a Unix socket or a loopback address."""
    if host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(hostaddr or host).is_loopback
    except ValueError:
        return host == "localhost"


@contextmanager
def interruptible(watch: Watch) -> Iterator[None]:
    """Let the deadline (SIGALRM) and a client that left (SIGTERM) interrupt the run anywhere.

    Here, unlike in a web worker, Python work is interrupted too: the signal handler runs in the
    main thread between two bytecodes, stops the watch (refusing statements, cancelling those in
    flight) and raises `RunStopped` where the run is, in the middle of building objects if it
    must. Whatever state that leaves behind dies with this process.
    """

    def stopper(reason: str):
        def handler(signum, frame) -> None:
            watch.stop(reason)
            raise RunStopped(watch.reason)

        return handler

    signal.signal(signal.SIGALRM, stopper(deadline_message(watch.seconds)))
    signal.signal(signal.SIGTERM, stopper(CLIENT_GONE))
    signal.setitimer(signal.ITIMER_REAL, watch.seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the result is made: let it be written


if __name__ == "__main__":
    main()
