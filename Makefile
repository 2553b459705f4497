# The two commands: `make run` (the bot) and `make test` (lint + types + the whole suite).
# Both create the virtual environment and install the project on first use, from requirements/dev.lock:
# exact versions with their hashes, so what is installed changes only when a lock file does.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
LOCKS  := requirements/prod.lock requirements/dev.lock

# production: runtime dependencies only, no dev tools, the package itself not editable
PROD_VENV ?= .venv-prod

# `make lock` keeps every pinned version that still fits pyproject.toml; `make lock LOCK_FLAGS=--upgrade`
# moves everything to the newest allowed versions. The dev lock is constrained by the prod lock, so the
# tests run the very versions production installs.
LOCK_FLAGS ?=
UV_COMPILE := $(VENV)/bin/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
              --python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock" $(LOCK_FLAGS)

.PHONY: run test lint pytest bench lock install-prod clean-venv

$(STAMP): pyproject.toml $(LOCKS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check  # a dependency added to pyproject.toml but not to the locks: run `make lock`
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m bot

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

test: lint pytest

bench: $(STAMP)
	$(PY) bench/manager_overhead.py
	$(PY) bench/dead_provider.py

# Regenerates both locks from pyproject.toml with uv (pinned in the dev extra, installed from the current
# dev lock); commit the two files it writes. Not a dependency of the stamp: it works with a stale lock.
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(UV_COMPILE) -o requirements/prod.lock
	$(UV_COMPILE) --extra dev -c requirements/prod.lock -o requirements/dev.lock

# What a server runs: $(PROD_VENV)/bin/ai-telegram-bot (see README, "Running as a service").
install-prod:
	@test -x $(PROD_VENV)/bin/python || $(PYTHON) -m venv $(PROD_VENV)
	$(PROD_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/prod.lock
	$(PROD_VENV)/bin/python -m pip install --quiet --no-deps .
	$(PROD_VENV)/bin/python -m pip check

clean-venv:
	rm -rf $(VENV) $(PROD_VENV)
