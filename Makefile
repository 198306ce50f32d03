# The two README commands: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: serve dev test test-unit test-clients check bench system-deps clean

# The npm SSE clients tests/clients runs (pinned by its package-lock.json).
CLIENTS_NODE_MODULES := tests/clients/node_modules/.package-lock.json

$(VENV)/.installed: setup.cfg pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -e '.[test,dev]'
	touch $@

## Serve the chat page at http://$(HOST):$(PORT) (demo model unless configured).
serve: $(VENV)/.installed
	HOST=$(HOST) PORT=$(PORT) $(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

## Development server (threaded, no gevent, auto-reload).
dev: $(VENV)/.installed
	$(VENV)/bin/flask --app chatstream run --debug --port $(PORT)

system-deps:
	./scripts/install-system-deps.sh

$(CLIENTS_NODE_MODULES): tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm ci --no-audit --no-fund
	touch $@

## The whole test suite: unit, live gunicorn, Redis, nginx, browser, third-party clients.
test: $(VENV)/.installed system-deps $(CLIENTS_NODE_MODULES)
	$(PY) -m pytest

## Only the third-party SSE clients (tests/clients).
test-clients: $(VENV)/.installed $(CLIENTS_NODE_MODULES)
	$(PY) -m pytest tests/clients

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

check: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache .mypy_cache .ruff_cache tests/clients/node_modules

## Benchmark chatstream against its peers (see bench/README.md).
## BENCH_ARGS="--quick" for a ~2 minute smoke check; "-s S1-1000 S3 -t node" to pick.
bench: $(VENV)/.installed
	$(PY) -m pip install -q -r bench/requirements.txt
	test -d bench/peers/node/node_modules || (cd bench/peers/node && npm ci --no-audit --no-fund)
	$(PY) -m bench $(BENCH_ARGS)
