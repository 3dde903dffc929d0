"""Reaping with nothing scheduled: one pass at a time across loops, and a web process that reaps
on its own. tests/test_connections.py runs it under runserver and gunicorn as deployed."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client
from django.utils import timezone
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import Sandbox
from playground.sandbox import reaper
from tests.probes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def registered(box: Sandbox) -> bool:
    return Sandbox.objects.filter(pk=box.pk).exists()


def role_exists(role: str) -> bool:
    with sandboxes.admin_engine().connect() as conn:
        return (
            conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None
        )


def make_idle(*boxes: Sandbox) -> None:
    long_ago = timezone.now() - timedelta(days=2)
    Sandbox.objects.filter(pk__in=[b.pk for b in boxes]).update(last_used_at=long_ago)


def test_a_pass_skips_while_another_process_holds_the_lock(make_sandbox):
    box = make_sandbox()
    make_idle(box)
    other = connections.create_connection(DEFAULT_DB_ALIAS)  # another process's reaper, say
    raw = other.get_new_connection(other.get_connection_params())
    try:
        assert raw.execute("SELECT pg_try_advisory_xact_lock(%s)", [reaper.REAPER_LOCK]).fetchone()[0]
        skipped = sandboxes.reap_once()
        assert skipped.skipped and skipped.dropped == ()
        assert registered(box) and role_exists(box.role)
        raw.commit()  # its pass is over
    finally:
        raw.close()
    done = sandboxes.reap_once()
    assert not done.skipped and done.dropped == (box.role,)
    assert not registered(box) and not role_exists(box.role)


def test_two_reaper_loops_at_once_reap_one_at_a_time(make_sandbox, settings):
    idle = [make_sandbox() for _ in range(8)]
    kept = make_sandbox()
    for box in idle:  # something to drop, so that a pass lasts long enough to be overlapped
        with sandboxes.engine_for(box).begin() as conn:
            conn.execute(text("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 5000) g"))
    make_idle(*idle)
    settings.PLAYGROUND = {**settings.PLAYGROUND, "REAP_EVERY_SECONDS": 0.02}

    loops = [sandboxes.Reaper().start(), sandboxes.Reaper().start()]
    try:
        wait_for(lambda: not Sandbox.objects.filter(pk__in=[b.pk for b in idle]).exists(), timeout=60)
    finally:
        for loop in loops:
            loop.stop()

    passes = [p for loop in loops for p in loop.passes]
    held = sorted((p.locked_at, p.finished) for p in passes if not p.skipped)
    for (_, end), (start, _) in itertools.pairwise(held):
        assert end <= start, "two passes held the lock at the same time"
    assert any(p.skipped for p in passes), "no round ever found the other loop reaping"
    dropped = [role for p in passes for role in p.dropped]
    assert sorted(dropped) == sorted(b.role for b in idle)  # each once, by whichever loop held the lock
    assert all(loop.passes for loop in loops), "a loop never ran a round"
    assert registered(kept) and role_exists(kept.role)
    assert not any(role_exists(b.role) for b in idle)


def test_an_idle_sandbox_disappears_with_no_command_run(settings):
    settings.PLAYGROUND = {
        **settings.PLAYGROUND,
        "REAP_EVERY_SECONDS": 0.2,
        "SANDBOX_IDLE_SECONDS_PER_USE": 1,
    }
    client = Client(enforce_csrf_checks=True)
    try:
        client.get("/api/recipes")  # any request starts this process's reaper loop
        response = client.post(
            "/api/recipes/offset-pagination/run",
            data='{"params": {"rows": 1000}}',
            content_type="application/json",
            headers={"X-CSRFToken": client.cookies["csrftoken"].value},
        )
        assert response.status_code == 200, response.content[:300]
        box = Sandbox.objects.get()
        waited = wait_for(lambda: not registered(box) and not role_exists(box.role), timeout=20)
        assert waited >= 0.5  # it was used once: kept one second, not dropped at once
    finally:
        reaper.stop_in_this_process()
