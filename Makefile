# Connect Portal: `make run` to try it, `make test` to test it. Only Python >= 3.12 is needed.

# The first Python >= 3.12 found (python3.14 ... python3, then pyenv's and the system's).
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3 \
	$(wildcard $(HOME)/.pyenv/versions/3.1[4-9]*/bin/python3) \
	$(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) \
	$(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) \
	$(wildcard /usr/bin/python3.1[2-9] /usr/local/bin/python3.1[2-9]); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo "$$p"; break; }; \
	done)
VENV := .venv
BIN := $(VENV)/bin
# What gets installed: exact versions with their hashes (`make lock` regenerates them).
LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev.txt
ADDR ?= 127.0.0.1:8000
SANDBOX_PORT ?= 8900

.PHONY: run demo test test-busy lint format sandbox clean check-python lock

check-python:
	@test -n "$(PYTHON)" || { echo "Connect Portal needs Python 3.12 or newer (Django 6); set PYTHON=/path/to/python3.12+" >&2; exit 1; }

$(BIN)/python: | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The locked dependencies first (refused unless every file matches its hash), then the portal
# itself without resolving anything; `pip check` fails if pyproject.toml asks for more than the
# lock holds (run `make lock`).
$(VENV)/.installed: $(LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	@touch $@

$(VENV)/.installed-dev: $(DEV_LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	@touch $(VENV)/.installed $@

## lock: resolve requirements/lock.txt and dev.txt again from pyproject.toml, with hashes.
## Keeps every pin that is still allowed; LOCK_ARGS=--upgrade takes the newest releases,
## LOCK_ARGS="--upgrade-package celery" one package (see README, "Dependencies").
LOCK_ARGS ?=
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.12 \
	--generate-hashes --custom-compile-command "make lock" --quiet $(LOCK_ARGS)
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv>=0.5"
	$(UV_COMPILE) -o $(LOCK)
	$(UV_COMPILE) --extra dev -c $(LOCK) -o $(DEV_LOCK)

## run: install, migrate, create a demo organization if none exists, start web + worker + beat
run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py bootstrap --if-empty --org-name Demo --email admin@example.com
	$(BIN)/python manage.py runall --addr $(ADDR)

## demo: a fresh portal (var/demo) wired to a Calendly sandbox; prints the login and a token
demo: $(VENV)/.installed
	$(BIN)/python scripts/demo.py --addr $(ADDR) --sandbox-port $(SANDBOX_PORT)

## test: install what the tests need and run the whole suite
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-busy: the tests that start real processes, with two CPU hogs beside them (CI runs it)
test-busy: $(VENV)/.installed-dev
	PYTHON=$(BIN)/python bash .ci/test-busy $(PYTEST_ARGS)

## lint: ruff, as CI runs it
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## sandbox: an application's API sandbox on port 8900 (APP=calendly by default, or github, figma):
## point <APP>_API_BASE_URL at it
APP ?= calendly
sandbox: $(VENV)/.installed
	$(BIN)/python -m connectors.sandbox $(APP) --port 8900

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
