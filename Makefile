# The two commands a newcomer needs:  make run   and   make test
# Both create .venv on first use and install the pinned dependencies into it.
# While changing code: make check (lint, then the tests without the browser and slow ones).
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
HOST  ?= 127.0.0.1
PORT  ?= 8000
# The first interpreter on PATH that is Python 3.12 or newer.
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& echo $$p && break; done)

# The browser tests drive Debian's Chromium package; no browser is ever downloaded.
CHROMIUM := /usr/bin/chromium
# The deployment tests put Debian's PgBouncer in front of the database.
PGBOUNCER := /usr/sbin/pgbouncer

.PHONY: run test check bench lint format reap clean chromium pgbouncer

run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# The whole suite, after lint: what CI runs (.ci/run) is exactly this.
test: lint chromium pgbouncer
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick loop: no browser, no subprocess servers, no Postgres restart (markers in pyproject.toml).
check: lint
	$(BIN)/python -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

# What the playground adds on top of Postgres, each figure beside its reference (docs/performance.md).
bench: $(VENV)/.runtime
	$(BIN)/python -m bench $(BENCH_ARGS)

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else \
	    echo "$(CHROMIUM) is missing and cannot be installed here (needs root and apt-get):"; \
	    echo "the browser tests will be skipped. Install it with: sudo apt-get install chromium"; \
	  fi; \
	fi

pgbouncer:
	@if [ ! -x $(PGBOUNCER) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's pgbouncer for the deployment tests"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer; \
	  else \
	    echo "$(PGBOUNCER) is missing and cannot be installed here (needs root and apt-get):"; \
	    echo "the PgBouncer test will be skipped. Install it with: sudo apt-get install pgbouncer"; \
	  fi; \
	fi

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

reap: $(VENV)/.runtime
	$(BIN)/python manage.py reap_sandboxes

$(VENV)/bin/python:
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is needed (python3.12 on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
