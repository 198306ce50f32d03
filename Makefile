# The two README commands: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

MIN_VENV ?= .venv-min
MIN_CONSTRAINTS := .ci/constraints-min.txt
# The langchain extra has floors of its own (langchain-openai pins a newer openai).
MIN_IGNORE := --ignore=tests/unit/test_langchain_adapter.py --ignore=tests/live/test_langchain_live.py

.PHONY: serve dev test test-unit test-min test-clients check check-js bench system-deps clean

# Test-only npm packages, each pinned by its package-lock.json: axe-core for
# the browser suite, the third-party SSE clients for tests/clients.
BROWSER_NODE_MODULES := tests/browser/node_modules/.package-lock.json
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

$(BROWSER_NODE_MODULES): tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --silent
	touch $@

$(CLIENTS_NODE_MODULES): tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm ci --no-audit --no-fund --silent
	touch $@

## The whole test suite: unit, live gunicorn, Redis, nginx, browser, faults, third-party clients.
test: $(VENV)/.installed system-deps $(BROWSER_NODE_MODULES) $(CLIENTS_NODE_MODULES)
	$(PY) -m pytest --durations=25

## Only the third-party SSE clients (tests/clients).
test-clients: $(VENV)/.installed $(CLIENTS_NODE_MODULES)
	$(PY) -m pytest tests/clients

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

## The unit and live tests on the lowest dependency versions setup.cfg allows:
## a fresh venv with chatstream[redis] installed under $(MIN_CONSTRAINTS).
test-min: system-deps
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q --upgrade pip
	$(MIN_VENV)/bin/python -m pip install -q -c $(MIN_CONSTRAINTS) -e '.[redis]' pytest hypothesis honcho
	$(MIN_VENV)/bin/python -m pip list --format=freeze | grep -i -E '^(flask|gunicorn|gevent|openai|prometheus.client|flask.limiter|httpx|httpx.sse|httptools|redis)=='
	$(MIN_VENV)/bin/python -m pytest tests/unit tests/live $(MIN_IGNORE)

check: $(VENV)/.installed check-js
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## Syntax-check the page's ES modules (Node parses them; nothing is run).
check-js:
	@for f in static/js/*.js; do node --experimental-default-type=module --check $$f || exit 1; done
	@echo "static/js: $$(ls static/js/*.js | wc -l) modules parse"

clean:
	rm -rf $(VENV) $(MIN_VENV) test-artifacts .pytest_cache .mypy_cache .ruff_cache tests/clients/node_modules tests/browser/node_modules

## Benchmark chatstream against its peers (see bench/README.md).
## BENCH_ARGS="--quick" for a ~2 minute smoke check; "-s S1-1000 S3 -t node" to pick.
bench: $(VENV)/.installed
	$(PY) -m pip install -q -r bench/requirements.txt
	test -d bench/peers/node/node_modules/openai || (cd bench/peers/node && npm ci --no-audit --no-fund)
	$(PY) -m bench $(BENCH_ARGS)
