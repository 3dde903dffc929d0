"""Settings, all read from the environment.

| variable | default | meaning |
|---|---|---|
| DATABASE_URL | (embedded server) | the app's own database |
| SANDBOX_DATABASE_URL | `<app db>_sandbox` on the same server | sandboxes; its user needs CREATEROLE |
| PLAYGROUND_SANDBOX_SERVERS | (embedded: a PostgreSQL 16 server) | more sandbox servers, `name:version=URL` |
| SECRET_KEY | a development key (refused when DEBUG is off) | also derives sandbox passwords |
| DEBUG | `1` | |
| ALLOWED_HOSTS | `127.0.0.1,localhost` | comma separated |
| PLAYGROUND_PGDATA | `.pgdata/` in the project | data folder of the embedded server |
| PLAYGROUND_HTTPS | on when DEBUG is off | served over HTTPS: secure cookies, redirect, HSTS |
| PLAYGROUND_REQUIRE_LOGIN | `0` | every page and API needs a signed-in user |
| OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET | (off) | sign in with an OpenID Connect provider |
| OIDC_ALLOWED_EMAIL_DOMAINS, OIDC_ALLOWED_GROUPS | (anyone) | who of the provider's accounts may sign in |
| PLAYGROUND_PROXY_USER_HEADER | (off) | a reverse proxy's header naming the signed-in user |
| PLAYGROUND_PROXY_ADDRESSES | (none) | the only peers that header is believed from |

docs/deploy.md lists every variable, production ones included.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def sandbox_servers(text: str) -> list[dict]:
    """`name:version=URL` entries separated by spaces: sandbox servers beside `main`."""
    found: list[dict] = []
    for entry in text.split():
        head, sep, url = entry.partition("=")
        name, _, version = head.partition(":")
        if not sep or not url or not version.isdigit() or not name.isidentifier() or name == "main":
            raise RuntimeError(f"PLAYGROUND_SANDBOX_SERVERS: {entry!r} is not name:version=URL")
        if any(s["name"] == name for s in found):
            raise RuntimeError(f"PLAYGROUND_SANDBOX_SERVERS: {name!r} is listed twice")
        found.append({"name": name, "version": int(version), "url": url})
    return found


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-not-secret-recipe-playground"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
CSRF_FAILURE_VIEW = "playground.web.views.csrf_failure"

# --- HTTPS, cookies, reverse proxy, CSP ----------------------------------------------------
# One switch for a site served over HTTPS (directly or by a proxy); each part can be overridden.
_https = env_bool("PLAYGROUND_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _https)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600 if _https else 0)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _https)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _https)
if env_bool("SECURE_PROXY_SSL_HEADER", False):  # only behind a proxy that always sets it
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
# Inline <script> and <style> need the per-response nonce (`{{ csp_nonce }}`); htmx is told in
# base.html not to inject styles or evaluate code, so nothing else inline is needed.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
# Django accounts always; a reverse proxy's user header when one is named
# (playground/web/proxy_user.py); OpenID Connect when configured (below).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "playground.web.proxy_user.ProxyUserBackend",
]
# OpenID Connect (playground/web/oidc.py): on when an issuer and a client id are given. Endpoints
# come from the issuer's discovery document; the mozilla-django-oidc settings are set here.
OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "").strip()
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "").strip() if OIDC_ISSUER else ""
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "")
OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = os.environ.get("OIDC_SCOPES", "openid email profile")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
if OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS.append("playground.web.oidc.CompanyBackend")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "shelf"
LOGOUT_REDIRECT_URL = "login"

INSTALLED_APPS = [
    "django.contrib.admin",  # the operator's view, for staff only (playground/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "playground",
]

MIDDLEWARE = [
    "playground.web.access.HealthCheckMiddleware",  # first: probes skip host checks and redirects
    "playground.web.respond.JsonErrorsMiddleware",  # API clients get JSON, even for Django's own error pages
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "playground.web.access.ClientAddressMiddleware",  # who asks: each address holds few sandboxes
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "playground.web.proxy_user.ProxyUserMiddleware",  # a no-op unless PLAYGROUND_PROXY_USER_HEADER
    "playground.web.access.PersonMiddleware",  # signed in, the sandbox is the person's
    "django_htmx.middleware.HtmxMiddleware",
    "playground.web.access.LoginRequiredMiddleware",  # a no-op unless PLAYGROUND_REQUIRE_LOGIN
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "playground.urls"
WSGI_APPLICATION = "playground.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csrf",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "playground.web.access.login_context",
                "playground.web.rooms.room_bar",
            ],
        },
    },
]

# --- databases ----------------------------------------------------------------------------
# Seconds a thread keeps its app-database connection between requests. runserver starts a new
# thread for every request, so a kept connection would outlive its thread (idle until garbage
# collected: ~50 of them after a burst of page loads): there the default is 0, closed at the end
# of each request. gunicorn's threads live on, so each reuses one connection.
_runserver = sys.argv[1:2] == ["runserver"]
_conn_max_age = int(os.environ.get("CONN_MAX_AGE", "0" if _runserver else "60"))
_sandbox_admin: tuple[str, str] | None = None
_sandbox_servers = sandbox_servers(os.environ.get("PLAYGROUND_SANDBOX_SERVERS", ""))
if os.environ.get("DATABASE_URL"):
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ["DATABASE_URL"], conn_max_age=_conn_max_age, conn_health_checks=True
        )
    }
else:
    from playground import embedded

    _pgdata = Path(os.environ.get("PLAYGROUND_PGDATA", BASE_DIR / ".pgdata"))
    _server = embedded.start(_pgdata, database="playground", secret=SECRET_KEY)
    DATABASES = {
        "default": {
            "ENGINE": "playground.appdb",
            "NAME": "playground",
            "USER": _server.user,
            "PASSWORD": _server.password,
            "HOST": _server.socket_dir,
            "PORT": "",
            "CONN_MAX_AGE": _conn_max_age,
        }
    }
    # Sandboxes are made by a role of their own, which alone may create roles.
    _sandbox_admin = (_server.sandbox_user, _server.sandbox_password)
    # A PostgreSQL 16 server beside it, for sandboxes only, started on first use.
    if env_bool("PLAYGROUND_EMBEDDED_PG16", True):
        _pgdata_16 = Path(os.environ.get("PLAYGROUND_PGDATA_16", f"{_pgdata}-16"))
        _sandbox_servers.append({"name": "pg16", "version": 16, "pgdata": _pgdata_16})
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# Django's PostgreSQL backend, health-checked by looking at the socket instead of a SELECT 1 on
# every request (playground/appdb/base.py).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "playground.appdb"
# Behind PgBouncer in transaction mode a cursor cannot outlive its transaction.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DISABLE_SERVER_SIDE_CURSORS", False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- sessions, static ---------------------------------------------------------------------
SESSION_ENGINE = "playground.web.sessions"  # the database backend, read by one plain SELECT
SESSION_COOKIE_AGE = 60 * 60 * 24 * 7
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # JSON clients read it to send X-CSRFToken
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production serves the collected, hashed and compressed files (collectstatic at build).
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
STATICFILES_DIRS = [BASE_DIR / "static"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},  # 500s and their tracebacks on stderr
    # Not propagated: the root's handler would print every line twice.
    "loggers": {"playground": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}

# --- the playground's own knobs -----------------------------------------------------------
PLAYGROUND = {
    # Every page and API needs a signed-in Django user (create one with createsuperuser).
    "REQUIRE_LOGIN": env_bool("PLAYGROUND_REQUIRE_LOGIN", False),
    # A reverse proxy that signs people in passes who they are in this header (X-Forwarded-User
    # for oauth2-proxy, Remote-User for Authelia), and maybe their email in another; believed only
    # from the proxy addresses or networks listed (the TCP peer; "*" is refused). Empty: off.
    "PROXY_USER_HEADER": os.environ.get("PLAYGROUND_PROXY_USER_HEADER", "").strip(),
    "PROXY_EMAIL_HEADER": os.environ.get("PLAYGROUND_PROXY_EMAIL_HEADER", "").strip(),
    "PROXY_ADDRESSES": env_list("PLAYGROUND_PROXY_ADDRESSES", ""),
    # Who may sign in with OpenID Connect: an email domain listed, or a group listed (in the
    # claim named by OIDC_GROUPS_CLAIM); both empty lets every account of the provider in.
    "OIDC_ALLOWED_EMAIL_DOMAINS": env_list("OIDC_ALLOWED_EMAIL_DOMAINS", ""),
    "OIDC_ALLOWED_GROUPS": env_list("OIDC_ALLOWED_GROUPS", ""),
    "OIDC_GROUPS_CLAIM": os.environ.get("OIDC_GROUPS_CLAIM", "groups"),
    # The provider as the sign-in button names it: "Sign in with …".
    "OIDC_PROVIDER_NAME": os.environ.get("OIDC_PROVIDER_NAME", "your company account"),
    # Sandbox database; None means a database named "<app database>_sandbox" on the app's server.
    "SANDBOX_DATABASE_URL": os.environ.get("SANDBOX_DATABASE_URL") or None,
    # Major version of that sandbox database's server (`main`), the version runs get by default.
    "SANDBOX_VERSION": int(os.environ.get("PLAYGROUND_SANDBOX_VERSION", "18")),
    # More sandbox servers ({name, version, url} or an embedded one's {name, version, pgdata}):
    # a new sandbox goes to the least-loaded server of the version asked for.
    "SANDBOX_SERVERS": _sandbox_servers,
    # Without SANDBOX_DATABASE_URL, who creates sandboxes there: (user, password), or None for the
    # app's own user. The embedded server has a role for it, so the app's role needs no CREATEROLE.
    "SANDBOX_ADMIN": _sandbox_admin,
    # Prefix of every sandbox role and schema name.
    "ROLE_PREFIX": os.environ.get("PLAYGROUND_ROLE_PREFIX", "sbx_"),
    # Statement timeout of a sandbox role; below the web worker's timeout.
    "STATEMENT_TIMEOUT_MS": int(os.environ.get("PLAYGROUND_STATEMENT_TIMEOUT_MS", "10000")),
    "LOCK_TIMEOUT_MS": 2000,
    "IDLE_IN_TRANSACTION_TIMEOUT_MS": 15000,
    "TEMP_FILE_LIMIT": "256MB",
    "WORK_MEM": "8MB",
    # Connections one sandbox role may hold at once.
    "CONNECTION_LIMIT": int(os.environ.get("PLAYGROUND_CONNECTION_LIMIT", "12")),
    # Sandboxes alive at once on this instance; the next new session is refused politely.
    "MAX_SANDBOXES": int(os.environ.get("PLAYGROUND_MAX_SANDBOXES", "200")),
    # Sandboxes one client address may hold (IPv6: one /64), so that one client cannot take every
    # slot; a room of people behind one NAT address still fits. 0: no limit per address.
    "SANDBOXES_PER_CLIENT": int(os.environ.get("PLAYGROUND_SANDBOXES_PER_CLIENT", "50")),
    # Proxies whose X-Forwarded-For names the client (the addresses gunicorn trusts, same variable);
    # addresses or networks, "*" for any. X-Forwarded-For from anyone else is ignored.
    "TRUSTED_PROXIES": env_list("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
    # A sandbox is dropped once idle for this long per use (each run counts one), and at the latest
    # after SANDBOX_IDLE_SECONDS: one used once and left goes after 15 minutes, a busy one stays.
    "SANDBOX_IDLE_SECONDS_PER_USE": int(os.environ.get("PLAYGROUND_SANDBOX_IDLE_SECONDS_PER_USE", "900")),
    "SANDBOX_IDLE_SECONDS": int(os.environ.get("PLAYGROUND_SANDBOX_IDLE_SECONDS", str(6 * 3600))),
    # Every web process looks this often for idle sandboxes to drop; one at a time reaps (an
    # advisory lock), so scaled out it still happens in one place. 0: only reap_sandboxes does.
    "REAP_EVERY_SECONDS": float(os.environ.get("PLAYGROUND_REAP_EVERY_SECONDS", "60")),
    # Rows of a result shown in the browser or returned as JSON.
    "MAX_ROWS_SHOWN": 50,
    # Largest seeded table, whatever a recipe's own bound says.
    "MAX_TABLE_ROWS": 1_000_000,
    # Space a sandbox's tables (with indexes) may take; runs are refused above it until a Reset.
    "SANDBOX_MAX_BYTES": int(os.environ.get("PLAYGROUND_SANDBOX_MAX_MB", "512")) * 2**20,
    # How often the server checks that a running query's client is still there (a killed worker).
    "CLIENT_CHECK_INTERVAL_MS": 2000,
    # Per process: the most recent sandboxes' engines that keep an idle pooled connection (each
    # holds SANDBOX_POOL_SIZE); four times as many engines are kept without one (engines.py).
    # See playground.sandbox.connection_budget for the connection bound they give.
    "SANDBOX_ENGINE_CACHE": int(os.environ.get("PLAYGROUND_SANDBOX_ENGINE_CACHE", "8")),
    "SANDBOX_POOL_SIZE": 1,
    # Runs in progress at once per process (each may open CONNECTION_LIMIT connections); a run
    # waits this long for a slot, then gets a "busy" message.
    "RUNS_PER_PROCESS": int(os.environ.get("PLAYGROUND_RUNS_PER_PROCESS", "3")),
    "RUN_SLOT_WAIT_SECONDS": 20,
    # Heavy runs (a recipe's declared cost above either figure: statements sent, rows held in
    # Python) take turns: HEAVY_RUNS_PER_PROCESS at once in a web process, so its other run slots
    # stay free for everyone else, and HEAVY_RUNS_AT_ONCE on the whole sandbox server (every
    # process and instance); a heavy run waits this long for its turn (0: it is refused at once
    # with a "busy" message: a waiting run holds a web thread that light runs need).
    "HEAVY_RUN_STATEMENTS": 1_000,
    "HEAVY_RUN_ROWS": 20_000,
    "HEAVY_RUNS_PER_PROCESS": int(os.environ.get("PLAYGROUND_HEAVY_RUNS_PER_PROCESS", "1")),
    "HEAVY_RUNS_AT_ONCE": int(os.environ.get("PLAYGROUND_HEAVY_RUNS_AT_ONCE", "1")),
    "HEAVY_SLOT_WAIT_SECONDS": 0,
    # Wall-clock deadline of one run (setup, variant, EXPLAIN): then its statements are cancelled
    # on the server and it ends with a message. Below GUNICORN_TIMEOUT and the proxy's timeout.
    "RUN_DEADLINE_SECONDS": float(os.environ.get("PLAYGROUND_RUN_DEADLINE_SECONDS", "20")),
    # Statements one run may send; the next one stops it (bounds the capture's memory).
    "MAX_STATEMENTS_PER_RUN": int(os.environ.get("PLAYGROUND_MAX_STATEMENTS_PER_RUN", "10000")),
    # A result lists at most this many statements, in at most this many kilobytes of JSON, in the
    # response and the page; a stored run keeps fewer. What is left out is counted and said.
    "STATEMENTS_SHOWN": 500,
    "RESULT_MAX_KB": 1024,
    "STORED_STATEMENTS": 300,
    "STORED_RESULT_MAX_KB": 256,
    # "off": the app database's commits (run allowance, last use, stored run) do not wait for the
    # disk; a server crash may lose the last fraction of a second of them (playground/apps.py).
    "APP_SYNCHRONOUS_COMMIT": os.environ.get("PLAYGROUND_APP_SYNCHRONOUS_COMMIT", "off").strip().lower(),
    # Runs one session may start: a burst, then a steady rate (token bucket kept in the app
    # database, so every worker and instance shares it). Beyond it: 429 with a clear message.
    "RUN_BURST": int(os.environ.get("PLAYGROUND_RUN_BURST", "30")),
    "RUNS_PER_MINUTE": int(os.environ.get("PLAYGROUND_RUNS_PER_MINUTE", "60")),
    # Folder of the track files (*.toml, docs/tracks.md); the default holds the shipped tracks.
    "TRACKS_DIR": Path(os.environ.get("PLAYGROUND_TRACKS_DIR") or BASE_DIR / "recipes" / "tracks"),
    # A workshop room closes this many hours after it was made (its host and join links stop working).
    "ROOM_HOURS": float(os.environ.get("PLAYGROUND_ROOM_HOURS", "12")),
    # Join codes a client address may get wrong: a burst, then a steady rate; beyond it every join
    # from that address is refused (429), the right code too, so that guessing teaches nothing.
    "ROOM_JOIN_MISSES": int(os.environ.get("PLAYGROUND_ROOM_JOIN_MISSES", "10")),
    "ROOM_JOIN_MISSES_PER_MINUTE": int(os.environ.get("PLAYGROUND_ROOM_JOIN_MISSES_PER_MINUTE", "5")),
}
