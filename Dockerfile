# Recipe Playground: the site served by gunicorn, static files by whitenoise.
#   docker build -t recipe-playground .
#   docker run -p 8000:8000 -e SECRET_KEY=... -e ALLOWED_HOSTS=... -v playground-data:/data recipe-playground
# docs/deploy.md has the variables, the database privileges and the sizing.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, exactly the pinned set, so code changes reuse this layer.
COPY requirements.txt ./
RUN pip install --requirement requirements.txt

# The code stays owned by root and read-only for the user that runs it; only /data is writable.
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home app \
    && mkdir -p /data \
    && chown app:app /data
COPY . .

# Hashed, compressed static files for whitenoise. The throwaway values only let the settings load:
# a DATABASE_URL keeps the embedded Postgres from starting during the build, and nothing connects.
RUN DEBUG=0 SECRET_KEY=build-time-only DATABASE_URL=postgres://build@localhost/build \
    python manage.py collectstatic --noinput

ENV DEBUG=0 \
    PORT=8000 \
    PLAYGROUND_PGDATA=/data/pgdata \
    HOME=/data
# The embedded Postgres keeps its data here when DATABASE_URL is not set.
VOLUME ["/data"]
USER app
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"

# Migrations under an advisory lock, then gunicorn (gunicorn.conf.py); or any command given.
ENTRYPOINT ["/app/bin/entrypoint"]
