"""Where the benchmark runs: a server of its own (unless DATABASE_URL names one), its own role
prefix so its sandboxes can be found and dropped, generous run allowances; and logins as the
roles of its sandboxes, for the references that bypass the playground."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLE_PREFIX = "sbxb_"


def configure_environment() -> None:
    """A dedicated embedded server unless DATABASE_URL names one; generous run allowances."""
    if not os.environ.get("DATABASE_URL"):
        os.environ.setdefault("PLAYGROUND_PGDATA", str(ROOT / ".pgdata-bench"))
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "k" * 50)
    os.environ["PLAYGROUND_ROLE_PREFIX"] = ROLE_PREFIX
    os.environ["PLAYGROUND_RUN_BURST"] = "1000000"
    os.environ["PLAYGROUND_RUNS_PER_MINUTE"] = "1000000"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    sys.path.insert(0, str(ROOT))


def start() -> None:
    """Configure, set Django up, migrate, and drop what an interrupted benchmark left behind."""
    configure_environment()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    drop_bench_sandboxes()


def drop_bench_sandboxes() -> None:
    from playground import sandbox
    from playground.models import Sandbox

    for box in Sandbox.objects.filter(role__startswith=ROLE_PREFIX):
        sandbox.drop(box)


def role_connection(role: str):
    """A psycopg connection logged in as a sandbox role, planned afresh like the playground's."""
    import psycopg

    from playground import sandbox

    url = sandbox.admin_url()
    kwargs = {
        "host": url.query.get("host") or url.host,
        "port": url.port,
        "dbname": url.database,
        "user": role,
        "password": sandbox.role_password(role),
        "prepare_threshold": None,
    }
    return psycopg.connect(**{k: v for k, v in kwargs.items() if v is not None})


def describe_machine() -> str:
    """CPUs, memory, Python and Postgres versions, for the line above the table."""
    import psutil

    return (
        f"{psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GB, "
        f"Python {platform.python_version()}, {server_version()}"
    )


def server_version() -> str:
    from sqlalchemy import text

    from playground import sandbox

    with sandbox.admin_engine().connect() as conn:
        return "PostgreSQL " + conn.execute(text("SHOW server_version")).scalar()
