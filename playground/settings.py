"""Settings, all read from the environment.

| variable | default | meaning |
|---|---|---|
| DATABASE_URL | (embedded server) | the app's own database |
| SANDBOX_DATABASE_URL | `<app db>_sandbox` on the same server | sandboxes; its user needs CREATEROLE |
| SECRET_KEY | a development key (refused when DEBUG is off) | also derives sandbox passwords |
| DEBUG | `1` | |
| ALLOWED_HOSTS | `127.0.0.1,localhost` | comma separated |
| PLAYGROUND_PGDATA | `.pgdata/` in the project | data folder of the embedded server |
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-not-secret-recipe-playground"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
CSRF_FAILURE_VIEW = "playground.views.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "django_htmx",
    "playground",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
            ],
        },
    },
]

# --- databases ----------------------------------------------------------------------------
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
else:
    from playground import embedded

    _pgdata = Path(os.environ.get("PLAYGROUND_PGDATA", BASE_DIR / ".pgdata"))
    _server = embedded.start(_pgdata, database="playground")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "playground",
            "USER": _server.user,
            "HOST": _server.socket_dir,
            "PORT": "",
            "CONN_MAX_AGE": 60,
        }
    }
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- sessions, static ---------------------------------------------------------------------
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 7
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # JSON clients read it to send X-CSRFToken
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
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
    "loggers": {"playground": {"handlers": ["console"], "level": "INFO"}},
}

# --- the playground's own knobs -----------------------------------------------------------
PLAYGROUND = {
    # Sandbox database; None means a database named "<app database>_sandbox" on the app's server.
    "SANDBOX_DATABASE_URL": os.environ.get("SANDBOX_DATABASE_URL") or None,
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
    # Idle time after which reap_sandboxes drops a sandbox.
    "SANDBOX_IDLE_SECONDS": int(os.environ.get("PLAYGROUND_SANDBOX_IDLE_SECONDS", str(6 * 3600))),
    # Rows of a result shown in the browser or returned as JSON.
    "MAX_ROWS_SHOWN": 50,
    # Largest seeded table, whatever a recipe's own bound says.
    "MAX_TABLE_ROWS": 1_000_000,
}
