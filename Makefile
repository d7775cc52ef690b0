# Baton: `make dev` serves the standalone mode; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: dev test test-fast lint imports bench chaos simulator worker web clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput
	$(PY) manage.py seed_agents --if-empty
	$(PY) manage.py ensure_admin
	DEBUG=$${DEBUG:-true} $(PY) manage.py runstandalone --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest -m "not browser" -q
	DJANGO_ALLOW_ASYNC_UNSAFE=true $(VENV)/bin/pytest -m browser -q

# Which package imports which, the lazy imports and any circle of modules (tests/layers.py).
imports:
	$(PYTHON) -m tests.layers

test-fast: $(VENV)/.installed
	$(VENV)/bin/pytest -m "not browser and not stack" -q

# Flags for a quicker run: make bench BENCH_ARGS="--jobs 20 --only baton".
bench: $(VENV)/.installed
	DATABASE_URL=$${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/baton} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	$(PY) bench/run.py $(BENCH_ARGS)

# Fault-free run, then workers killed, broker flushed, PostgreSQL restarted; then a worker on
# another host (a UTS namespace) lost. Needs root. One scenario: CHAOS_ARGS="--scenario host-loss".
chaos: $(VENV)/.installed
	DATABASE_URL=$${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/baton} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	$(PY) bench/chaos.py $(CHAOS_ARGS)

simulator: $(VENV)/.installed
	$(PY) manage.py llm_simulator --port 8001 --latency-ms 200

worker: $(VENV)/.installed
	$(VENV)/bin/celery -A orchestrator_site worker --pool threads --concurrency 16 --loglevel INFO

web: $(VENV)/.installed
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) orchestrator_site.asgi:application

clean:
	rm -rf $(VENV) var *.egg-info
