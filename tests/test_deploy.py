"""The production path, as the Dockerfile runs it: collectstatic, bin/entrypoint (migrations under
an advisory lock, then gunicorn with gunicorn.conf.py), production settings from the environment.

The site is served by a real gunicorn in a subprocess, against the test databases or against an
embedded Postgres of its own, and answered over HTTP.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from playground import sandbox as sandboxes
from playground.models import Sandbox
from tests.conftest import TEST_ROLE_PREFIX, connect_kwargs, superuser_url

ROOT = Path(__file__).resolve().parent.parent
HOST = "playground.example.com"
START_TIMEOUT = 90

pytestmark = pytest.mark.django_db(transaction=True)


def production_env(**extra: str) -> dict[str, str]:
    """A realistic production environment behind a TLS-terminating proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PLAYGROUND_"))}
    env.pop("DATABASE_URL", None)
    env.pop("SANDBOX_DATABASE_URL", None)
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=f"{HOST},127.0.0.1",
        CSRF_TRUSTED_ORIGINS=f"https://{HOST}",
        SECURE_PROXY_SSL_HEADER="1",
        PYTHON=sys.executable,
    )
    env.update(extra)
    return env


def session_databases_env() -> dict[str, str]:
    """DATABASE_URL / SANDBOX_DATABASE_URL naming the databases this test session uses."""
    app = connection.settings_dict
    host = str(app["HOST"])
    where = quote(host, safe="") if host.startswith("/") else f"{host}:{app['PORT'] or 5432}"
    auth = app["USER"] + (f":{quote(app['PASSWORD'], safe='')}" if app["PASSWORD"] else "")
    return {
        "DATABASE_URL": f"postgres://{auth}@{where}/{app['NAME']}",
        "SANDBOX_DATABASE_URL": sandboxes.admin_url().render_as_string(hide_password=False),
        "PLAYGROUND_ROLE_PREFIX": TEST_ROLE_PREFIX,
    }


def manage(*args: str, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- check --deploy -------------------------------------------------------------------------
@pytest.mark.slow
def test_check_deploy_passes_with_production_settings():
    env = production_env(DATABASE_URL="postgres://app@db.internal/playground")
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout
    assert "WARNING" not in done.stderr + done.stdout


@pytest.mark.slow
def test_check_deploy_flags_a_weak_production_setup():
    """The check is real: a short key and HTTPS switched off are reported."""
    env = production_env(
        DATABASE_URL="postgres://app@db.internal/playground", SECRET_KEY="short", PLAYGROUND_HTTPS="0"
    )
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert done.returncode != 0
    for check_id in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert check_id in done.stderr, (check_id, done.stderr)


def test_debug_off_without_a_secret_key_refuses_to_start():
    env = production_env(DATABASE_URL="postgres://app@db.internal/playground")
    del env["SECRET_KEY"]
    done = manage("check", env=env)
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr


# --- gunicorn through the entrypoint --------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Site:
    """bin/entrypoint in a subprocess, and a tiny HTTP client that keeps cookies."""

    def __init__(self, env: dict[str, str]):
        self.port = int(env["PORT"])
        self.cookies: dict[str, str] = {}
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (lives as long as the server)
        self.proc = subprocess.Popen(
            [str(ROOT / "bin" / "entrypoint")], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def request(self, method: str, path: str, body=None, *, https: bool = True, **headers: str):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers.setdefault("Host", HOST)
        if https:
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
            cookie = SimpleCookie(raw)
            self.cookies.update({name: morsel.value for name, morsel in cookie.items()})
        return response, content

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the entrypoint exited with {self.proc.returncode}:\n{self.output()}")
            try:
                response, _ = self.request("GET", "/healthz", https=False)
                if response.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"gunicorn did not answer /healthz within {START_TIMEOUT}s:\n{self.output()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def static_root() -> Iterator[Path]:
    """collectstatic exactly as the Dockerfile runs it, into a folder of its own."""
    folder = Path(tempfile.mkdtemp(prefix="playground-static-"))
    env = production_env(
        SECRET_KEY="build-time-only",
        DATABASE_URL="postgres://build@localhost/build",
        STATIC_ROOT=str(folder),
    )
    done = manage("collectstatic", "--noinput", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (folder / "staticfiles.json").exists()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def served(static_root) -> Iterator[Site]:
    """The site on the test databases, as several containers sharing one Postgres would run."""
    env = production_env(
        **session_databases_env(),
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="2",
        STATIC_ROOT=str(static_root),
    )
    site = Site(env)
    try:
        site.wait_ready()
        yield site
    finally:
        returncode = site.stop()
        for box in Sandbox.objects.all():
            sandboxes.drop(box)
    assert returncode == 0, site.output()


def csp_nonce(response) -> str:
    policy = response.getheader("Content-Security-Policy")
    assert policy, "no Content-Security-Policy header"
    match = re.search(r"script-src 'self' 'nonce-([^']+)'", policy)
    assert match, policy
    assert f"style-src 'self' 'nonce-{match.group(1)}'" in policy
    for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    return match.group(1)


@pytest.mark.slow
def test_gunicorn_serves_the_site_behind_a_tls_proxy(served):
    site = served
    response, body = site.request("GET", "/")
    assert response.status == 200, body[:500]
    html = body.decode()
    nonce = csp_nonce(response)
    tags = re.findall(r"<(?:script|style)\b[^>]*>", html)
    assert len(tags) >= 3 and all(f'nonce="{nonce}"' in tag for tag in tags), tags
    assert response.getheader("Strict-Transport-Security").startswith("max-age=31536000")
    assert response.getheader("X-Frame-Options") == "DENY"
    cookies = " ".join(response.headers.get_all("Set-Cookie") or [])
    assert "csrftoken=" in cookies and "Secure" in cookies

    # whitenoise serves the hashed, compressed files collected at build time.
    css = re.search(r'href="(/static/playground/site\.[0-9a-f]{12}\.css)"', html)
    assert css, "site.css is not the hashed name from the manifest"
    response, body = site.request("GET", css.group(1), **{"Accept-Encoding": "gzip"})
    assert response.status == 200 and body
    assert "max-age=315360000" in response.getheader("Cache-Control")

    # A recipe run through the JSON API, answered by a worker process.
    site.request("GET", "/api/recipes")
    token = site.cookies["csrftoken"]
    payload = {"variant": "keyset", "params": {"page": 3, "size": 5, "rows": 1000}}
    response, body = site.request(
        "POST",
        "/api/recipes/keyset-pagination/run",
        json.dumps(payload),
        **{
            "Content-Type": "application/json",
            "X-CSRFToken": token,
            "Referer": f"https://{HOST}/",
            "Origin": f"https://{HOST}",
        },
    )
    assert response.status == 200, body[:1000]
    result = json.loads(body)
    assert result["ok"] and result["query_count"] == 1 and result["rows"]["total"] == 5

    # Plain HTTP is redirected; the health probe is answered whatever the scheme and host.
    response, _ = site.request("GET", "/", https=False)
    assert response.status == 301 and response.getheader("Location") == f"https://{HOST}/"
    response, body = site.request("GET", "/healthz", https=False, Host="10.1.2.3:8000")
    assert response.status == 200
    assert json.loads(body) == {
        "ok": True,
        "app_database": "ok",
        "sandbox_database": "ok",
        "sandbox_servers": [{"name": "main", "version": 18, "state": "up"}],
    }
    response, _ = site.request("GET", "/", Host="evil.example")
    assert response.status == 400

    log = site.output()
    assert "Booting worker" in log and "gthread" in log
    assert '"POST /api/recipes/keyset-pagination/run HTTP/1.1" 200' in log


# --- migrations when several instances start at once ----------------------------------------
@pytest.fixture
def empty_database() -> Iterator[str]:
    """A new database the app's user owns (made by a superuser: the app's user cannot)."""
    name = f"test_playground_migrate_{secrets.token_hex(3)}"
    url = superuser_url()
    owner = sql.Identifier(connection.settings_dict["USER"])
    with psycopg.connect(**connect_kwargs(url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), owner))
    yield name
    with psycopg.connect(**connect_kwargs(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.slow
def test_instances_starting_together_migrate_one_after_another(empty_database):
    env = production_env(**session_databases_env())
    env["DATABASE_URL"] = env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{empty_database}"
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "migrate_locked"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=180)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    applied = [out.count(" OK") for out in outputs]
    assert sorted(applied)[:2] == [0, 0] and max(applied) > 0, outputs  # one did it all
    done = manage("migrate", "--check", env=env)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the image's default: no DATABASE_URL, the embedded server in a data folder --------------
@pytest.fixture
def pgdata() -> Iterator[Path]:
    # Run as root, the embedded server drops to its own user, which must reach the folder.
    parent = Path(tempfile.mkdtemp(prefix="playground-data-"))
    parent.chmod(0o755)
    yield parent / "pgdata"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
def test_gunicorn_on_the_embedded_default(static_root, pgdata):
    env = production_env(
        PLAYGROUND_PGDATA=str(pgdata),
        PLAYGROUND_ROLE_PREFIX=TEST_ROLE_PREFIX,
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",
        STATIC_ROOT=str(static_root),
    )
    site = Site(env)
    try:
        site.wait_ready()
        site.request("GET", "/")
        payload = {"variant": "offset", "params": {"page": 2, "rows": 1000}}
        response, body = site.request(
            "POST",
            "/api/recipes/offset-pagination/run",
            json.dumps(payload),
            **{
                "Content-Type": "application/json",
                "X-CSRFToken": site.cookies["csrftoken"],
                "Referer": f"https://{HOST}/",
            },
        )
        assert response.status == 200, body[:1000]
        assert json.loads(body)["ok"]
        # Preloaded: the master started the server; workers only share it.
        assert (pgdata / "postmaster.pid").exists()
    finally:
        returncode = site.stop()
    assert returncode == 0, site.output()
    # The last process holding the embedded server stopped it on the way out.
    assert not (pgdata / "postmaster.pid").exists(), site.output()


# --- PgBouncer in transaction mode in front of the app database -------------------------------
PGBOUNCER = Path("/usr/sbin/pgbouncer")


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def pgbouncer() -> Iterator[str]:
    """A transaction-pooling PgBouncer in front of the test server; yields its DATABASE_URL."""
    if not PGBOUNCER.exists():
        pytest.skip(f"{PGBOUNCER} is missing: install Debian's pgbouncer (apt-get install pgbouncer)")
    app = connection.settings_dict
    folder = Path(tempfile.mkdtemp(prefix="playground-pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    # PgBouncer logs in to the server with the password it has for the user (plain text here).
    (folder / "users.txt").write_text(f'"{app["USER"]}" "{app["PASSWORD"] or ""}"\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={app["HOST"]} port={app["PORT"] or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
"""
    )
    command = [str(PGBOUNCER), str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # it refuses to run as root
        command += ["-u", "pgserver" if _user_exists("pgserver") else "nobody"]
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (lives as long as pgbouncer)
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"postgres://{app['USER']}@127.0.0.1:{port}/{app['NAME']}"  # PgBouncer trusts its clients
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"pgbouncer did not start:\n{log.read()}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_gunicorn_with_the_app_database_behind_pgbouncer(static_root, pgbouncer):
    env = production_env(
        **session_databases_env(),
        PORT=str(free_port()),
        STATIC_ROOT=str(static_root),
        DISABLE_SERVER_SIDE_CURSORS="1",
    )
    env["DATABASE_URL"] = pgbouncer  # migrations, sessions, the sandbox registry; sandboxes direct
    site = Site(env)
    try:
        site.wait_ready()
        assert "No migrations to apply." in site.output()
        site.request("GET", "/")
        for page in (2, 3):
            response, body = site.request(
                "POST",
                "/api/recipes/keyset-pagination/run",
                json.dumps({"variant": "keyset", "params": {"page": page, "size": 5, "rows": 1000}}),
                **{
                    "Content-Type": "application/json",
                    "X-CSRFToken": site.cookies["csrftoken"],
                    "Referer": f"https://{HOST}/",
                },
            )
            assert response.status == 200, body[:1000]
            assert json.loads(body)["ok"]
        assert Sandbox.objects.count() == 1  # the session, stored through PgBouncer, kept its sandbox
    finally:
        returncode = site.stop()
        for box in Sandbox.objects.all():
            sandboxes.drop(box)
    assert returncode == 0, site.output()


# --- the sandbox administrator needs no superuser --------------------------------------------
ADMIN = "test_playground_sandbox_admin"


@pytest.fixture
def least_privileged_admin(settings) -> Iterator[str]:
    """A sandbox administrator with exactly the privileges docs/deploy.md lists."""
    superuser = superuser_url().set(database=sandboxes.admin_url().database)
    database = f"{superuser.database}_least"
    password = secrets.token_hex(16)
    admin, db = sql.Identifier(ADMIN), sql.Identifier(database)
    _drop_admin(superuser, database)
    statements = [
        sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(admin, sql.Literal(password)),
        sql.SQL("ALTER ROLE {} SET createrole_self_grant = 'set, inherit'").format(admin),
        sql.SQL("GRANT SET ON PARAMETER temp_file_limit TO {}").format(admin),
        sql.SQL("GRANT CONNECT ON DATABASE postgres TO {}").format(admin),
        sql.SQL("CREATE DATABASE {} OWNER {}").format(db, admin),
    ]
    with psycopg.connect(**connect_kwargs(superuser, dbname="postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
    url = superuser.set(username=ADMIN, password=password, database=database)
    settings.PLAYGROUND = {**settings.PLAYGROUND, "SANDBOX_DATABASE_URL": url.render_as_string(False)}
    yield ADMIN
    sandboxes.forget_admin_engine(url)
    _drop_admin(superuser, database)


def _drop_admin(superuser, database: str) -> None:
    admin = sql.Identifier(ADMIN)
    with psycopg.connect(**connect_kwargs(superuser, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [ADMIN]).fetchone():
            conn.execute(sql.SQL("REVOKE SET ON PARAMETER temp_file_limit FROM {}").format(admin))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(admin))
            conn.execute(sql.SQL("DROP ROLE {}").format(admin))


def test_sandboxes_work_with_a_createrole_administrator(least_privileged_admin, run_recipe):
    admin = sandboxes.admin_engine()
    with admin.connect() as conn:
        assert conn.exec_driver_sql(
            "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user"
        ).one() == (
            least_privileged_admin,
            False,
        )
    box = sandboxes.provision()
    try:
        result = run_recipe(sandboxes.engine_for(box), "keyset-pagination", "keyset", page=2)
        assert result.ok, result.error
        sandboxes.reset(box)
        assert sandboxes.reap(idle_seconds=10**6) == []
    finally:
        sandboxes.drop(box)
    with admin.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT count(*) FROM pg_roles WHERE rolname = %s", (box.role,)).scalar()
            == 0
        )
