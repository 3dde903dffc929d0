"""A heavy run's process lowers its Postgres backend's priority along with its own, and never
touches a process it cannot recognise as that backend."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from playground.running import apart
from tests.conftest import connect_kwargs


def backend_niceness(conn: psycopg.Connection) -> int:
    return os.getpriority(os.PRIO_PROCESS, conn.info.backend_pid)


def test_the_backend_of_a_heavy_runs_connection_is_reniced(engine):
    with psycopg.connect(**connect_kwargs(engine.url, password=engine.url.password)) as conn:
        before = backend_niceness(conn)
        if not apart.lower_backend_priority(conn):
            pytest.skip("the sandbox server is not a process of this machine that this one may renice")
        assert before < apart.NICENESS
        assert backend_niceness(conn) == apart.NICENESS
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the backend works on, only less often
    with psycopg.connect(**connect_kwargs(engine.url, password=engine.url.password)) as other:
        assert backend_niceness(other) == before  # a new backend starts at the server's own priority


def test_only_a_backend_reached_on_this_machine_is_a_candidate():
    assert apart._served_here("/tmp/sockets", "")
    assert apart._served_here("127.0.0.1", "127.0.0.1")
    assert apart._served_here("localhost", "::1")
    assert not apart._served_here("db.internal", "10.0.0.7")
    assert not apart._served_here("192.168.1.20", "")


def test_a_heavy_runs_process_takes_only_the_cpu_nobody_else_wants():
    """In a process of its own, as the heavy run's is (the test's own must keep its priority)."""
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; from playground.running.apart import lower_own_priority; lower_own_priority(); "
            "print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown == [str(os.SCHED_IDLE), str(apart.NICENESS)]
